"""Start's statements: one locked check (Idempotency-Key first, then the caps and the time
estimate) and an INSERT that checks the caps again under the spending locks."""

# Start's caps, as SQL expressions over one user (%(user_id)s). Caps count spending, not waiting:
# a look in waiting_continue costs nothing until Continue (which the step budget bounds).
_USER_ACTIVE = """(SELECT count(*) FROM replicate_tasks
                   WHERE user_id = %(user_id)s AND status IN ('pending', 'processing'))"""
_USER_RECENT_STARTS = """(SELECT count(*) FROM replicate_tasks
                         WHERE user_id = %(user_id)s AND created_at > NOW() - INTERVAL '1 hour')"""
_SITE_ACTIVE = "(SELECT count(*) FROM replicate_tasks WHERE status IN ('pending', 'processing'))"
# Steps started in the last hour (to the minute: counts kept per minute by a trigger, migration
# 0010, so at most one minute's more) plus looks whose first step waits for the worker.
SITE_RECENT_STEPS = """((SELECT COALESCE(sum(steps), 0) FROM replicate_step_minutes
                         WHERE minute >= date_trunc('minute', NOW() - INTERVAL '1 hour'))
                        + (SELECT count(*) FROM replicate_tasks WHERE status = 'pending'))"""

# Spending is decided one at a time, so two requests never both take the last place under a cap:
# start, continue and retry hold the user's lock, then the site's, until they commit (the worker's
# step 1 needs neither: its step row and the pending look it replaces commit together). A
# statement's snapshot is taken before its lock is granted, so the counts that decide come from a
# statement sent after the lock (in the same round trip).
USER_LOCK = "pg_advisory_xact_lock(hashtext('replicate_tasks:user:' || %(user_id)s))"
# The site's lock has the two-key form: a space of its own, which no user id can hash into.
LOCK_SPENDING = f"SELECT {USER_LOCK}, pg_advisory_xact_lock(hashtext('replicate_tasks'), 0);"

# Start's first statement, inside its transaction: serialises one user's starts (the user's lock;
# the uploads that follow need not hold the site's), then the look an Idempotency-Key already
# made, the caps, the time estimate and the new look's id (made here: Python's uuid module loads
# platform, 3 ms of a cold start). A start committed while this one waited may be missing from
# these numbers; INSERT_TASK checks the caps again under both locks.
START_CHECKS = f"""
SELECT {USER_LOCK} AS locked,
       (SELECT json_build_object('id', id, 'status', status, 'current_step', current_step,
                                 'total_steps', total_steps, 'request_hash', request_hash)
        FROM replicate_tasks WHERE user_id = %(user_id)s AND idempotency_key = %(key)s) AS existing,
       {_USER_ACTIVE} AS user_active,
       {_USER_RECENT_STARTS} AS user_recent_starts,
       (SELECT CEIL(EXTRACT(EPOCH FROM (MIN(created_at) + INTERVAL '1 hour' - NOW())))
        FROM replicate_tasks WHERE user_id = %(user_id)s AND created_at > NOW() - INTERVAL '1 hour') AS retry_after,
       {_SITE_ACTIVE} AS site_active,
       {SITE_RECENT_STEPS} AS site_recent_steps,
       (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY EXTRACT(EPOCH FROM (completed_at - started_at)))
        FROM (SELECT completed_at, started_at FROM replicate_task_steps
              WHERE status = 'succeeded' AND started_at IS NOT NULL
              ORDER BY completed_at DESC LIMIT 50) recent) AS step_seconds,
       gen_random_uuid()::text AS new_task_id
"""

# The look, if the caps still hold under both locks and its Idempotency-Key is new; no row otherwise.
INSERT_TASK = f"""
INSERT INTO replicate_tasks (id, user_id, status, person_image, garments, prompt_hints,
                             current_step, total_steps, created_at, updated_at,
                             idempotency_key, request_hash, file_prefix)
SELECT %(id)s, %(user_id)s, 'pending', %(person_image)s, %(garments)s, %(prompt_hints)s,
       0, %(total_steps)s, NOW(), NOW(), %(key)s, %(request_hash)s, %(file_prefix)s
WHERE {_USER_ACTIVE} < %(max_user_active)s
  AND {_USER_RECENT_STARTS} < %(max_user_starts)s
  AND {_SITE_ACTIVE} < %(max_site_active)s
  AND {SITE_RECENT_STEPS} < %(max_site_steps)s
ON CONFLICT (user_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
RETURNING id
"""

# INSERT_TASK after the spending locks, in one round trip: its snapshot is taken once they are held.
LOCKED_INSERT_TASK = LOCK_SPENDING + INSERT_TASK
