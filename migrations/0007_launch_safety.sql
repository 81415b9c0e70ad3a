-- Launching a step safely (issue 12): a look whose launch keeps failing for a reason that is not
-- Replicate's (a bug, unencodable text) is quarantined after a few attempts instead of being
-- re-claimed forever; and a create that may have reached Replicate without being recorded is
-- remembered, so the next claim looks for that prediction (adopts or cancels it) before creating.

ALTER TABLE replicate_tasks
    -- Launches of the current step attempt that failed with an error of ours; reset when recorded.
    ADD COLUMN launch_failures SMALLINT NOT NULL DEFAULT 0
        CONSTRAINT replicate_tasks_launch_failures_in_range CHECK (launch_failures >= 0),
    -- When a create for the current step attempt was first sent and not yet recorded.
    ADD COLUMN create_sent_at TIMESTAMPTZ;
