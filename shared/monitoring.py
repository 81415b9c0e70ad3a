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

# Steps that ended badly lately, by why: a model, Replicate or storage in trouble shows up here as a
# count per error_code (the user's own Cancel is not trouble). Step rows' times have a zone.
FAILURES = """
SELECT COALESCE(error_code, '?') AS code, count(*) AS steps, count(DISTINCT task_id) AS looks,
       ROUND(EXTRACT(EPOCH FROM (NOW() - max(COALESCE(completed_at, created_at))))) AS last_s,
       (array_agg(error ORDER BY COALESCE(completed_at, created_at) DESC))[1] AS latest
FROM replicate_task_steps
WHERE created_at >= NOW() - make_interval(secs => %(since_s)s) AND status IN ('failed', 'canceled')
  AND error_code IS DISTINCT FROM 'canceled_by_user'
GROUP BY 1
ORDER BY steps DESC, code
"""

# Steps whose prediction is still not created, by how long they have been trying: each retry of a
# failing create re-claims the task and moves its updated_at, so "since last change" stays small
# through a Replicate outage; the step row's created_at does not move.
NOT_STARTED = """
SELECT t.id, t.current_step, t.total_steps, t.launch_failures,
       ROUND(EXTRACT(EPOCH FROM (NOW() - s.created_at))) AS trying_s,
       GREATEST(ROUND(EXTRACT(EPOCH FROM (t.not_before - NOW()))), 0) AS next_try_s
FROM replicate_tasks t
JOIN replicate_task_steps s ON s.task_id = t.id AND s.step = t.current_step AND s.attempt = t.attempt
WHERE t.status = 'processing' AND t.prediction_id IS NULL
  AND s.created_at < NOW() - make_interval(secs => %(after_s)s)
ORDER BY s.created_at
LIMIT 20
"""

# Running steps far past the usual: twice the 95th percentile of the last 500 successful steps
# (the profile's typical step before there are any), at least a minute. Reads of a prediction that
# keep failing leave no mark on the row (each check still moves checked_at), and a dropped webhook or
# a slow model looks the same: the step simply runs on. Read-only, from the recent-success index.
SLOW_STEPS = """
WITH usual AS (
    SELECT percentile_cont(0.95) WITHIN GROUP (ORDER BY seconds) AS p95_s
    FROM (SELECT EXTRACT(EPOCH FROM (completed_at - started_at)) AS seconds
          FROM replicate_task_steps
          WHERE status = 'succeeded' AND started_at IS NOT NULL
          ORDER BY completed_at DESC
          LIMIT 500) AS recent
), due AS (
    SELECT GREATEST(2 * COALESCE(p95_s, %(typical_s)s), 60) AS after_s, COALESCE(p95_s, %(typical_s)s) AS usual_s
    FROM usual
)
SELECT t.id, t.current_step, t.total_steps, ROUND(EXTRACT(EPOCH FROM (NOW() - t.step_started_at))) AS running_s,
       ROUND(due.usual_s) AS usual_s
FROM replicate_tasks t, due
WHERE t.status = 'processing' AND t.prediction_id IS NOT NULL
  AND t.step_started_at < NOW() - make_interval(secs => due.after_s)
ORDER BY t.step_started_at
LIMIT 20
"""

# Due now: the claim (if it is older than a create could take), the back-off and the check time
# are cleared, so the next worker or checker ping takes the task first.
REDRIVE = """
UPDATE replicate_tasks
SET claim_token = NULL, claimed_at = NULL, not_before = NULL, checked_at = NULL  -- not updated_at: nothing moved yet
WHERE id = %(id)s AND status IN ('pending', 'processing')
  AND (claimed_at IS NULL OR claimed_at < NOW() - make_interval(secs => %(live_claim_s)s))
RETURNING id, status, prediction_id
"""

# `fail`: which of the looks have a prediction that canceling them should stop at Replicate.
RUNNING_PREDICTIONS = """
SELECT id FROM replicate_tasks WHERE id = ANY(%(ids)s) AND status = 'processing' AND prediction_id IS NOT NULL
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
# (all attempts: money spent on failures counts). `unpriced`: steps that ran a prediction but have
# no recorded cost (a step that never created one cost nothing).
_ENDED_SINCE = "s.completed_at >= NOW() - make_interval(secs => %(since_s)s)"

SPEND_PER_DAY = f"""
SELECT to_char(s.completed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS day, count(*) AS steps,
       count(*) FILTER (WHERE s.cost_usd IS NULL AND s.prediction_id IS NOT NULL) AS unpriced,
       COALESCE(sum(s.cost_usd), 0) AS cost_usd
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
