-- Site-wide spending caps count recent step attempts and unfinished tasks across all users.
CREATE INDEX replicate_task_steps_created ON replicate_task_steps (created_at);
CREATE INDEX replicate_tasks_active ON replicate_tasks (status)
    WHERE status IN ('pending', 'processing', 'waiting_continue');
