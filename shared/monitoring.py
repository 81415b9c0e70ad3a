"""The on-call view's SQL (`python -m monitor`): the seed document's two monitoring queries,
verbatim, and what "stuck" and "re-drive" mean."""

# The seed document's monitoring SQL, verbatim.
SEED_ACTIVE = """
SELECT id, status, current_step, total_steps, 
       ROUND(EXTRACT(EPOCH FROM (NOW() - updated_at))) as sec_ago
FROM replicate_tasks 
WHERE status IN ('pending', 'processing', 'waiting_continue')
ORDER BY created_at DESC;
"""

SEED_WAITING = """
SELECT id, user_id, current_step, total_steps
FROM replicate_tasks
WHERE status = 'waiting_continue';
"""

# What "stuck" means, each with the sentence the table shows.
STUCK = """
SELECT id, status, current_step, total_steps, prediction_id,
       ROUND(EXTRACT(EPOCH FROM (NOW() - updated_at))) AS sec_ago,
       CASE
         WHEN status = 'pending' THEN 'pending: no worker has started it'
         WHEN prediction_id IS NULL THEN 'processing: its prediction was never created'
         WHEN step_started_at < NOW() - make_interval(secs => %(step_timeout_s)s) - make_interval(secs => %(after_s)s)
              THEN 'processing: past its step deadline'
         ELSE 'processing: the checker has not looked at it'
       END AS why
FROM replicate_tasks
WHERE (status = 'pending' AND created_at::timestamptz < NOW() - make_interval(secs => %(after_s)s))
   OR (status = 'processing' AND prediction_id IS NULL
       AND updated_at::timestamptz < NOW() - make_interval(secs => %(after_s)s))
   OR (status = 'processing' AND prediction_id IS NOT NULL
       AND (step_started_at < NOW() - make_interval(secs => %(step_timeout_s)s) - make_interval(secs => %(after_s)s)
            OR COALESCE(checked_at, step_started_at, updated_at::timestamptz)
               < NOW() - make_interval(secs => %(after_s)s)))
ORDER BY created_at
"""

# Due now: the claim (if it is older than a create could take), the back-off and the check time
# are cleared, so the next worker or checker ping takes the task first.
REDRIVE = """
UPDATE replicate_tasks
SET claim_token = NULL, claimed_at = NULL, not_before = NULL, checked_at = NULL, updated_at = NOW()
WHERE id = %(id)s AND status IN ('pending', 'processing')
  AND (claimed_at IS NULL OR claimed_at < NOW() - make_interval(secs => %(live_claim_s)s))
RETURNING id, status, prediction_id
"""

# Completion webhooks that have not got through: still being retried, or given up after a day.
WEBHOOK_TROUBLE = """
SELECT id, task_id, type, attempts,
       CASE WHEN created_at <= NOW() - make_interval(secs => %(give_up_s)s) THEN 'given up'
            ELSE 'retrying' END AS state,
       ROUND(EXTRACT(EPOCH FROM (next_attempt_at - NOW()))) AS next_in_s, last_error
FROM look_events
WHERE delivered_at IS NULL AND attempts > 0
ORDER BY created_at DESC
LIMIT 20
"""

# `monitor spend`: what the steps that ended since a moment cost, from each step's recorded cost
# (all attempts: money spent on failures counts). `unpriced`: steps without a recorded cost.
_ENDED_SINCE = "s.completed_at >= NOW() - make_interval(secs => %(since_s)s)"

SPEND_PER_DAY = f"""
SELECT to_char(s.completed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS day, count(*) AS steps,
       count(*) FILTER (WHERE s.cost_usd IS NULL) AS unpriced, COALESCE(sum(s.cost_usd), 0) AS cost_usd
FROM replicate_task_steps s
WHERE {_ENDED_SINCE}
GROUP BY 1
ORDER BY 1
"""

SPEND_PER_USER = f"""
SELECT t.user_id, count(DISTINCT t.id) AS looks, count(*) AS steps, COALESCE(sum(s.cost_usd), 0) AS cost_usd
FROM replicate_task_steps s JOIN replicate_tasks t ON t.id = s.task_id
WHERE {_ENDED_SINCE}
GROUP BY t.user_id
ORDER BY cost_usd DESC, t.user_id
LIMIT %(top)s
"""

SPEND_PER_LOOK = f"""
SELECT t.id, t.user_id, t.status, count(*) AS steps, COALESCE(sum(s.cost_usd), 0) AS cost_usd
FROM replicate_task_steps s JOIN replicate_tasks t ON t.id = s.task_id
WHERE {_ENDED_SINCE}
GROUP BY t.id, t.user_id, t.status
ORDER BY cost_usd DESC, t.id
LIMIT %(top)s
"""

# A step's own end: succeeded, failed (the model or Replicate), canceled (the user, or the deadline).
SPEND_PER_OUTCOME = f"""
SELECT s.status AS outcome, count(*) AS steps, COALESCE(sum(s.cost_usd), 0) AS cost_usd
FROM replicate_task_steps s
WHERE {_ENDED_SINCE} AND s.status IN ('succeeded', 'failed', 'canceled')
GROUP BY s.status
ORDER BY s.status DESC
"""
