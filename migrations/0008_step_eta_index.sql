-- A running step's ETA (issue 10.4): the recent succeeded steps of the same model, newest first,
-- read by index whatever the size of the step history.
CREATE INDEX replicate_task_steps_model_succeeded ON replicate_task_steps (model, completed_at)
    WHERE status = 'succeeded';
