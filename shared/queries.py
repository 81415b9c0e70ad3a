"""Every SQL statement the functions run. Each state transition is one conditional statement:
it changes the task only if the task is still in the state the caller saw, and writes the
step's history row in the same statement. Losing a race means getting no row back.

Task states: pending -> processing -> waiting_continue -> processing -> ... -> completed,
or failed. While `processing`, `prediction_id IS NULL` means the step's prediction is not created
yet: `claim_token` names the one caller allowed to create it.
"""

import os

from shared.look_queries import RECORD_END
from shared.start_queries import LOCK_SPENDING, SITE_RECENT_STEPS


def new_claim_token() -> str:
    """The `%(token)s` of a claim: 128 random bits (secrets.token_hex(16), without importing
    secrets and random on the claiming paths)."""
    return os.urandom(16).hex()


# --- reading -----------------------------------------------------------------------------------

STEP_BY_PREDICTION = """
SELECT task_id, step, attempt, status FROM replicate_task_steps WHERE prediction_id = %(prediction_id)s
"""

# The task whose current prediction this is, in any status (the caller checks it is processing).
# No status condition: with statistics taken while nothing was in flight, one let the planner
# pick the partial "active" index and filter every in-flight row; this is one probe of
# replicate_tasks_prediction.
TASK_BY_PREDICTION = """
SELECT * FROM replicate_tasks WHERE prediction_id = %(prediction_id)s
"""

# Continue's and Retry's step budget: steps the user started in the last hour (new looks,
# continues and retries alike) plus the first step of each of their looks still waiting for the
# worker (admitted spending, not yet a step row), and the same for the whole site.
STEP_BUDGET = f"""
SELECT (SELECT count(*) FROM replicate_task_steps s JOIN replicate_tasks t ON t.id = s.task_id
        WHERE t.user_id = %(user_id)s AND s.created_at > NOW() - INTERVAL '1 hour')
     + (SELECT count(*) FROM replicate_tasks WHERE user_id = %(user_id)s AND status = 'pending') AS user_steps,
       {SITE_RECENT_STEPS} AS site_steps
"""
# After the spending locks, in one round trip: no concurrent button takes the last step as well.
LOCKED_STEP_BUDGET = LOCK_SPENDING + STEP_BUDGET

# --- launching a step's prediction ---------------------------------------------------------------

_NEW_STEP_ROW = """
history AS (
    INSERT INTO replicate_task_steps (task_id, step, attempt, status)
    SELECT id, current_step, attempt, 'starting' FROM claimed
    ON CONFLICT (task_id, step, attempt) DO UPDATE SET status = 'starting', error = NULL, error_code = NULL,
        error_detail = NULL, progress_percent = NULL
)
SELECT * FROM claimed
"""

# Worker: new tasks, and steps whose claim went stale before a prediction was recorded (the run
# that claimed them died). Oldest first; rows locked by another worker are skipped, not waited on.
CLAIM_TO_LAUNCH = """
WITH due AS (
    SELECT id, status AS previous_status FROM replicate_tasks
    WHERE (status = 'pending' OR (status = 'processing' AND prediction_id IS NULL))
      AND (claimed_at IS NULL OR claimed_at < NOW() - make_interval(secs => %(stale_s)s))
      AND (not_before IS NULL OR not_before <= NOW())
    ORDER BY created_at
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
), claimed AS (
    UPDATE replicate_tasks t
    SET status = 'processing',
        current_step = CASE WHEN t.status = 'pending' THEN 1 ELSE t.current_step END,
        claim_token = %(token)s, claimed_at = NOW(), not_before = NULL, updated_at = NOW()
    FROM due WHERE t.id = due.id
    RETURNING t.*, due.previous_status
), """ + _NEW_STEP_ROW

# Continue: the next step, from the image the user just looked at.
# A button pressed on a look as its step and attempt were then (each optional): a request sent again
# after its answer was lost finds the look moved on and changes nothing (a second paid step).
_AS_SEEN = "current_step = COALESCE(%(step)s, current_step) AND attempt = COALESCE(%(attempt)s, attempt)"

CLAIM_CONTINUE = """
WITH claimed AS (
    UPDATE replicate_tasks
    SET status = 'processing', current_step = current_step + 1, attempt = 1,
        prediction_id = NULL, step_started_at = NULL, checked_at = NULL, not_before = NULL,
        claim_token = %(token)s, claimed_at = NOW(), error_message = NULL, error_code = NULL,
        error_detail = NULL, launch_failures = 0, create_sent_at = NULL,
        updated_at = NOW()
    WHERE id = %(id)s AND status = 'waiting_continue' AND current_step < total_steps AND """ + _AS_SEEN + """
    RETURNING *
), """ + _NEW_STEP_ROW

# Retry: the failed step again, from the last good image, as a new attempt.
CLAIM_RETRY = """
WITH claimed AS (
    UPDATE replicate_tasks
    SET status = 'processing', current_step = GREATEST(current_step, 1),
        attempt = CASE WHEN current_step = 0 THEN 1 ELSE attempt + 1 END,
        prediction_id = NULL, step_started_at = NULL, checked_at = NULL, not_before = NULL,
        claim_token = %(token)s, claimed_at = NOW(), error_message = NULL, error_code = NULL,
        error_detail = NULL, launch_failures = 0, create_sent_at = NULL,
        updated_at = NOW()
    WHERE id = %(id)s AND status = 'failed' AND total_steps >= 1 AND """ + _AS_SEEN + """
    RETURNING *
), """ + _NEW_STEP_ROW

_CLAIM_HELD = "id = %(id)s AND status = 'processing' AND prediction_id IS NULL AND claim_token = %(token)s"

# Before a create is sent: if its answer is lost, the step's next claim looks for it first.
CREATE_SENDING = f"""UPDATE replicate_tasks SET create_sent_at = COALESCE(create_sent_at, NOW())
WHERE {_CLAIM_HELD} RETURNING id"""

_RECORD = """
WITH t AS (
    UPDATE replicate_tasks
    SET prediction_id = %(prediction_id)s, step_started_at = NOW(), checked_at = NOW(),
        claim_token = NULL, claimed_at = NULL, launch_failures = 0, create_sent_at = NULL, updated_at = NOW()
    WHERE {held}
    RETURNING *
), history AS (
    UPDATE replicate_task_steps s
    SET status = 'processing', prediction_id = %(prediction_id)s, started_at = NOW()
    FROM t WHERE s.task_id = t.id AND s.step = t.current_step AND s.attempt = t.attempt
)
SELECT * FROM t
"""
LAUNCHED = _RECORD.format(held=_CLAIM_HELD)
# A webhook whose URL token names a step attempt still claimed, none recorded: its lost create.
ADOPT = _RECORD.format(held="id = %(id)s AND status = 'processing' AND prediction_id IS NULL "
                            "AND current_step = %(step)s AND attempt = %(attempt)s")

LAUNCH_FAILED = f"""
WITH t AS (
    UPDATE replicate_tasks
    SET status = 'failed', error_message = %(error)s, error_code = %(error_code)s,
        error_detail = %(error_detail)s, claim_token = NULL, claimed_at = NULL, launch_failures = 0,
        create_sent_at = NULL, updated_at = NOW()
    WHERE {_CLAIM_HELD}
    RETURNING *
), history AS (
    UPDATE replicate_task_steps s
    SET status = 'failed', error = %(error)s, error_code = %(error_code)s, error_detail = %(error_detail)s,
        completed_at = NOW()
    FROM t WHERE s.task_id = t.id AND s.step = t.current_step AND s.attempt = t.attempt
), """ + RECORD_END + """
SELECT * FROM t
"""

# A transient error, or a bug of ours (`broke` = 1, counted): the claim back, tried after the back-off.
LAUNCH_DEFERRED = f"""
UPDATE replicate_tasks
SET claim_token = NULL, claimed_at = NULL, launch_failures = launch_failures + %(broke)s,
    not_before = NOW() + make_interval(secs => %(delay_s)s), updated_at = NOW()
WHERE {_CLAIM_HELD}
RETURNING id
"""

# --- reconciling a running prediction ------------------------------------------------------------

# Checker: predictions in flight, least recently checked first, each checked by one run at a time
# and at most once per run (`run_started` is when this run began).
CLAIM_TO_CHECK = """
UPDATE replicate_tasks t SET checked_at = NOW()
FROM (
    SELECT id FROM replicate_tasks
    WHERE status = 'processing' AND prediction_id IS NOT NULL
      AND (checked_at IS NULL
           OR checked_at < LEAST(NOW() - make_interval(secs => %(recheck_s)s), %(run_started)s))
    ORDER BY checked_at NULLS FIRST
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
) due
WHERE t.id = due.id
RETURNING t.*
"""

# status?force_check=true and webhooks: the same claim for one task.
CLAIM_ONE_TO_CHECK = """
UPDATE replicate_tasks SET checked_at = NOW()
WHERE id = %(id)s AND status = 'processing' AND prediction_id IS NOT NULL
  AND (checked_at IS NULL OR checked_at < NOW() - make_interval(secs => %(recheck_s)s))
RETURNING *
"""

# How many in-flight predictions are due for a check, and when the oldest was created: the window
# for Replicate's list endpoint.
DUE_TO_CHECK = """
SELECT count(*) AS n, min(step_started_at) AS oldest FROM replicate_tasks
WHERE status = 'processing' AND prediction_id IS NOT NULL
  AND (checked_at IS NULL OR checked_at < NOW() - make_interval(secs => %(recheck_s)s))
"""

IN_FLIGHT_NOT_CHECKED_SINCE = """
SELECT count(*) AS n FROM replicate_tasks
WHERE status = 'processing' AND prediction_id IS NOT NULL
  AND (checked_at IS NULL OR checked_at < %(since)s)
"""

DB_NOW = "SELECT NOW() AS now"

# A running step's ETA: the median run time of the model's last 20 succeeded steps
# (replicate_task_steps_model_succeeded; read at most once a minute per instance).
MODEL_STEP_SECONDS = """
SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY seconds) AS median
FROM (SELECT COALESCE(predict_time_s, EXTRACT(EPOCH FROM (completed_at - started_at))) AS seconds
      FROM replicate_task_steps
      WHERE status = 'succeeded' AND model = %(model)s AND started_at IS NOT NULL
      ORDER BY completed_at DESC LIMIT 20) recent
"""

# What a look cost: every attempt of every step, failed ones too (the completion webhook).
LOOK_COST = """
SELECT sum(cost_usd) AS cost_usd FROM replicate_task_steps WHERE task_id = %(id)s
"""

# --- the user's other choices --------------------------------------------------------------------

FINISH = """
WITH t AS (
    UPDATE replicate_tasks
    SET status = 'completed', result_url = intermediate_result,
        error_message = NULL, error_code = NULL, error_detail = NULL,
        current_step = CASE WHEN status = 'failed' THEN GREATEST(current_step - 1, 1) ELSE current_step END,
        claim_token = NULL, claimed_at = NULL, updated_at = NOW()
    WHERE id = %(id)s
      AND (status = 'waiting_continue' OR (status = 'failed' AND intermediate_result IS NOT NULL))
    RETURNING *
), """ + RECORD_END + """
SELECT * FROM t
"""

CANCEL = """
WITH t AS (
    UPDATE replicate_tasks
    SET status = 'failed', error_message = %(error)s, error_code = %(error_code)s, error_detail = NULL,
        claim_token = NULL, claimed_at = NULL, updated_at = NOW()
    WHERE id = %(id)s AND status IN ('pending', 'processing')
    RETURNING *
), history AS (
    UPDATE replicate_task_steps s
    SET status = 'canceled', error = %(error)s, error_code = %(error_code)s, completed_at = NOW()
    FROM t WHERE s.task_id = t.id AND s.step = t.current_step AND s.attempt = t.attempt
      AND s.status IN ('starting', 'processing')
), """ + RECORD_END + """
SELECT * FROM t
"""

# The status view in one round trip: the task, joined with every attempt of its steps (one row
# each; a task with none yet gives one row of NULL step columns). Times come as UTC text. Not the person photo, and any
# data URI in garments cut to "data:": a poll never ships megabytes of images.
TASK_VIEW = """
SELECT t.id, t.user_id, t.status, t.prediction_id, t.current_step, t.total_steps,
       t.intermediate_result, t.result_url, t.error_message, t.error_code, t.error_detail,
       CASE WHEN strpos(t.garments, 'data:') > 0
            THEN regexp_replace(t.garments, '"data:[^"]*"', '"data:"', 'g') ELSE t.garments END AS garments,
       (t.created_at::timestamptz AT TIME ZONE 'UTC')::text AS created_at,
       (t.updated_at::timestamptz AT TIME ZONE 'UTC')::text AS updated_at,
       s.step, s.attempt, s.status AS step_status, s.prediction_id AS step_prediction_id,
       s.image_url, s.error, s.error_code AS step_error_code, s.progress_percent, s.model,
       EXTRACT(EPOCH FROM (NOW() - s.started_at))::float8 AS step_elapsed_s,  -- a float, not a Decimal to build
       (s.started_at AT TIME ZONE 'UTC')::text AS started_at,
       (s.completed_at AT TIME ZONE 'UTC')::text AS completed_at
FROM replicate_tasks t
LEFT JOIN replicate_task_steps s ON s.task_id = t.id
WHERE t.id = %(id)s
ORDER BY s.step, s.attempt
"""

