-- Invariants every statement in shared/queries.py keeps, now kept by the database too (as River
-- does): a write that would break one fails instead of leaving a task no code path expects.
-- Each holds for rows the original functions wrote as well (they never set the port's columns,
-- kept result_url for completed looks and set intermediate_result with waiting_continue).

ALTER TABLE replicate_tasks
    -- Only a task in processing can be claimed; the claim's token and time come and go together.
    ADD CONSTRAINT replicate_tasks_claim_only_while_processing
        CHECK (claim_token IS NULL OR status = 'processing'),
    ADD CONSTRAINT replicate_tasks_claim_token_with_claimed_at
        CHECK ((claim_token IS NULL) = (claimed_at IS NULL)),
    -- A step's deadline counts from its prediction: no start time without one.
    ADD CONSTRAINT replicate_tasks_step_started_with_prediction
        CHECK (step_started_at IS NULL OR prediction_id IS NOT NULL),
    -- The final image belongs to a completed look only.
    ADD CONSTRAINT replicate_tasks_result_only_when_completed
        CHECK (result_url IS NULL OR status = 'completed'),
    -- Waiting for the user means there is an image to look at.
    ADD CONSTRAINT replicate_tasks_waiting_has_image
        CHECK (status <> 'waiting_continue' OR intermediate_result IS NOT NULL),
    -- A pending look has not reached Replicate yet.
    ADD CONSTRAINT replicate_tasks_pending_has_no_prediction
        CHECK (status <> 'pending' OR prediction_id IS NULL),
    ADD CONSTRAINT replicate_tasks_counters_in_range
        CHECK (attempt >= 1 AND current_step >= 0 AND total_steps >= 0);

ALTER TABLE replicate_task_steps
    -- A succeeded attempt has its stored image.
    ADD CONSTRAINT replicate_task_steps_succeeded_has_image
        CHECK (status <> 'succeeded' OR image_url IS NOT NULL);
