"""SQL of a look's life around its steps: the event every ending statement writes (RECORD_END,
used by shared.queries), finishing idle looks, my looks, share links and the completion
webhook's outbox. Split from shared.queries only to keep modules small; same rules."""

# --- a look that ends (the ending statements in shared.queries include RECORD_END) ---------------

# Every statement that ends a look (completed or failed) names its UPDATE `t` and includes this:
# the completion webhook's outbox row is written in the same statement as the status change, so
# an ended look always has its event and a rolled-back one never has. Its id is the webhook-id.
RECORD_END = """
ended AS (
    INSERT INTO look_events (id, task_id, type, created_at)
    SELECT 'msg_' || replace(gen_random_uuid()::text, '-', ''), id, 'look.' || status, NOW()
    FROM t WHERE status IN ('completed', 'failed')
)"""

# Worker: looks left waiting for their user longer than LOOK_IDLE_FINISH_S end as "Finish here"
# would (the last good image becomes the result); a few at a time, oldest first. A failed look
# that is left alone simply stays failed.
FINISH_IDLE = """
WITH idle AS (
    SELECT id FROM replicate_tasks
    WHERE status = 'waiting_continue' AND updated_at < LOCALTIMESTAMP - make_interval(secs => %(idle_s)s)
    ORDER BY updated_at
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
), t AS (
    UPDATE replicate_tasks r
    SET status = 'completed', result_url = intermediate_result, error_message = NULL, updated_at = NOW()
    FROM idle WHERE r.id = idle.id AND r.status = 'waiting_continue'
    RETURNING r.*
), """ + RECORD_END + """
SELECT * FROM t
"""

# --- the completion webhook's outbox --------------------------------------------------------------

# Worker: events due for a try, oldest first, leased for `lease_s` so a concurrent run does not send
# them too; events older than `give_up_s` are not tried again (the monitor shows them).
CLAIM_EVENTS = """
UPDATE look_events e
SET attempts = e.attempts + 1, next_attempt_at = NOW() + make_interval(secs => %(lease_s)s)
FROM (
    SELECT id FROM look_events
    WHERE delivered_at IS NULL AND next_attempt_at <= NOW()
      AND created_at > NOW() - make_interval(secs => %(give_up_s)s)
    ORDER BY next_attempt_at
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
) due
WHERE e.id = due.id
RETURNING e.id, e.task_id, e.type, e.payload, e.attempts,
          (e.created_at AT TIME ZONE 'UTC')::text AS ended_at
"""

# What the event's body is made of: the look, and the latest attempt of each step as it was when
# the look ended (a Retry after a failure adds attempts later; they belong to a later event).
EVENT_TASK = """
SELECT id, user_id, result_url, person_image, garments,
       (created_at::timestamptz AT TIME ZONE 'UTC')::text AS created_at
FROM replicate_tasks WHERE id = %(id)s
"""

EVENT_STEPS = """
SELECT DISTINCT ON (s.step) s.step, s.attempt, s.status, s.image_url, s.error, s.model
FROM replicate_task_steps s JOIN look_events e ON e.task_id = s.task_id
WHERE e.id = %(event_id)s AND s.created_at <= e.created_at
ORDER BY s.step, s.attempt DESC
"""

# The body is fixed on the first try: every retry sends the same bytes under the same webhook-id.
EVENT_PAYLOAD = """
UPDATE look_events SET payload = COALESCE(payload, %(payload)s) WHERE id = %(id)s RETURNING payload
"""

EVENT_DELIVERED = """
UPDATE look_events SET delivered_at = NOW(), last_error = %(note)s WHERE id = %(id)s
"""

EVENT_RETRY_LATER = """
UPDATE look_events SET next_attempt_at = NOW() + make_interval(secs => %(delay_s)s),
                       last_error = COALESCE(%(error)s, last_error)
WHERE id = %(id)s
"""

# --- my looks and share links ----------------------------------------------------------------------

# A user's looks, newest first, a page at a time: keyset paging on (created_at, id) through
# replicate_tasks_user_newest, so a page costs the same at the millionth look as at the first.
# The page first, then its times in UTC: with both conversions beside the index scan, the planner
# chose a parallel bitmap scan and a sort of the user's whole history (the million-look test).
_MY_LOOKS = """
WITH page AS MATERIALIZED (
    SELECT id, status, current_step, total_steps, intermediate_result, result_url, created_at, updated_at
    FROM replicate_tasks
    WHERE user_id = %(user_id)s {after}
    ORDER BY created_at DESC, id DESC
    LIMIT %(limit)s
)
SELECT id, status, current_step, total_steps, intermediate_result, result_url,
       created_at::text AS created_key,
       (created_at::timestamptz AT TIME ZONE 'UTC')::text AS created_at,
       (updated_at::timestamptz AT TIME ZONE 'UTC')::text AS updated_at
FROM page
ORDER BY page.created_at DESC, id DESC
"""
MY_LOOKS = _MY_LOOKS.format(after="")
MY_LOOKS_AFTER = _MY_LOOKS.format(after="AND (created_at, id) < (%(created)s::timestamp, %(id)s)")

SHARE_ADD = "INSERT INTO replicate_task_shares (token_hash, task_id) VALUES (%(token_hash)s, %(id)s) RETURNING task_id"

SHARE_REVOKE_ALL = """
UPDATE replicate_task_shares SET revoked_at = NOW() WHERE task_id = %(id)s AND revoked_at IS NULL RETURNING task_id
"""

SHARED_TASK = "SELECT task_id FROM replicate_task_shares WHERE token_hash = %(token_hash)s AND revoked_at IS NULL"
