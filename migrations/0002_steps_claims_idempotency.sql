-- What the port adds to the seed's table. Every column is nullable or defaulted, so rows written
-- by the original functions (seed columns only) stay valid and keep working.

ALTER TABLE replicate_tasks ALTER COLUMN updated_at SET DEFAULT NOW();

ALTER TABLE replicate_tasks
    -- The right to create the current step's prediction: whoever holds claim_token may call
    -- Replicate once; a claim older than the stale interval with no prediction_id is re-driven.
    ADD COLUMN claim_token TEXT,
    ADD COLUMN claimed_at TIMESTAMPTZ,
    -- Attempt number of the current step (Retry adds one).
    ADD COLUMN attempt INTEGER NOT NULL DEFAULT 1,
    -- When the current prediction was created: the step deadline counts from here.
    ADD COLUMN step_started_at TIMESTAMPTZ,
    -- Last reconcile with Replicate: the checker takes the least recently checked first, and
    -- status?force_check=true reconciles a task at most once per few seconds.
    ADD COLUMN checked_at TIMESTAMPTZ,
    -- Back-off after a transient Replicate error when creating a prediction.
    ADD COLUMN not_before TIMESTAMPTZ,
    -- Idempotency-Key of the start request, and a hash of that request's body.
    ADD COLUMN idempotency_key TEXT,
    ADD COLUMN request_hash TEXT;

CREATE UNIQUE INDEX replicate_tasks_idempotency
    ON replicate_tasks (user_id, idempotency_key) WHERE idempotency_key IS NOT NULL;

-- Work the worker must start: new tasks, and steps whose prediction is not created yet.
CREATE INDEX replicate_tasks_to_launch
    ON replicate_tasks (created_at)
    WHERE status = 'pending' OR (status = 'processing' AND prediction_id IS NULL);

-- Predictions in flight, least recently checked first.
CREATE INDEX replicate_tasks_in_flight
    ON replicate_tasks (checked_at NULLS FIRST)
    WHERE status = 'processing' AND prediction_id IS NOT NULL;

CREATE INDEX replicate_tasks_prediction ON replicate_tasks (prediction_id)
    WHERE prediction_id IS NOT NULL;

-- Spending caps: a user's unfinished tasks, and the tasks a user started recently.
CREATE INDEX replicate_tasks_user_active ON replicate_tasks (user_id)
    WHERE status IN ('pending', 'processing', 'waiting_continue');
CREATE INDEX replicate_tasks_user_created ON replicate_tasks (user_id, created_at);

-- One row per attempt of a step: what ran, with which prediction, and how it ended.
CREATE TABLE replicate_task_steps (
    task_id TEXT NOT NULL REFERENCES replicate_tasks (id) ON DELETE CASCADE,
    step INTEGER NOT NULL CHECK (step >= 1),
    attempt INTEGER NOT NULL CHECK (attempt >= 1),
    status TEXT NOT NULL
        CHECK (status IN ('starting', 'processing', 'succeeded', 'failed', 'canceled')),
    prediction_id TEXT,
    image_url TEXT,
    replicate_output TEXT,
    error TEXT,
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    started_at TIMESTAMPTZ,
    completed_at TIMESTAMPTZ,
    PRIMARY KEY (task_id, step, attempt)
);

CREATE UNIQUE INDEX replicate_task_steps_prediction
    ON replicate_task_steps (prediction_id) WHERE prediction_id IS NOT NULL;
