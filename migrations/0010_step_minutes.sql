-- The site-wide "steps in the last hour" cap (MAX_STEPS_PER_HOUR), read by every start, Continue
-- and Retry, counted step rows through replicate_task_steps_created: cheap while a site is quiet,
-- but ~1.5 ms per count at 2,700 steps an hour, and start counts it twice (issue 13: start must
-- not grow with the site's history). This table keeps the count per minute of each step row's
-- created_at, maintained by a trigger in the inserting statement's own transaction, so the cap
-- reads at most 61 small rows. Rows older than two hours are dropped when a new minute begins.
CREATE TABLE replicate_step_minutes (
    minute TIMESTAMPTZ PRIMARY KEY,
    steps INTEGER NOT NULL CHECK (steps >= 0)
);

CREATE FUNCTION replicate_count_step_minute() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    new_minute BOOLEAN;
BEGIN
    -- Rows written with an old created_at (an import, a backfill) are outside every window.
    IF NEW.created_at <= NOW() - INTERVAL '1 hour' THEN
        RETURN NULL;
    END IF;
    INSERT INTO replicate_step_minutes AS m (minute, steps)
    VALUES (date_trunc('minute', NEW.created_at), 1)
    ON CONFLICT (minute) DO UPDATE SET steps = m.steps + 1
    RETURNING xmax = 0 INTO new_minute;
    IF new_minute THEN
        DELETE FROM replicate_step_minutes WHERE minute < NOW() - INTERVAL '2 hours';
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER replicate_task_steps_count_minute
    AFTER INSERT ON replicate_task_steps
    FOR EACH ROW EXECUTE FUNCTION replicate_count_step_minute();

INSERT INTO replicate_step_minutes (minute, steps)
SELECT date_trunc('minute', created_at), count(*)
FROM replicate_task_steps
WHERE created_at > NOW() - INTERVAL '1 hour'
GROUP BY 1;
