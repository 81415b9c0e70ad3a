-- What a look's life needs beyond the seed's columns (second round): why a step failed, in a
-- code a frontend can translate and the model's own words; how far a running step has got;
-- which model ran a step, for how long, and what it cost. All nullable: rows written before
-- (and by the original functions) stay valid.

ALTER TABLE replicate_tasks
    -- snake_case, one of shared.states.ErrorCode; set together with error_message.
    ADD COLUMN error_code TEXT
        CONSTRAINT replicate_tasks_error_code_snake_case CHECK (error_code ~ '^[a-z][a-z0-9_]*$'),
    -- The model's (or Replicate's) own words about the failure, shown in small print.
    ADD COLUMN error_detail TEXT;

ALTER TABLE replicate_task_steps
    ADD COLUMN error_code TEXT
        CONSTRAINT replicate_task_steps_error_code_snake_case CHECK (error_code ~ '^[a-z][a-z0-9_]*$'),
    ADD COLUMN error_detail TEXT,
    -- Last progress read from the prediction's logs (tqdm-style "k/N"), 0..100.
    ADD COLUMN progress_percent SMALLINT
        CONSTRAINT replicate_task_steps_progress_in_range CHECK (progress_percent BETWEEN 0 AND 100),
    -- The model that ran this attempt (owner/name), its metrics.predict_time and its cost.
    ADD COLUMN model TEXT,
    ADD COLUMN predict_time_s DOUBLE PRECISION
        CONSTRAINT replicate_task_steps_predict_time_non_negative CHECK (predict_time_s >= 0),
    ADD COLUMN cost_usd NUMERIC(12, 6)
        CONSTRAINT replicate_task_steps_cost_non_negative CHECK (cost_usd >= 0);
