-- The start path (issues 10, 13). Caps count spending, not waiting: a look in waiting_continue
-- costs nothing until the user presses Continue, so a user's active cap counts pending and
-- processing only (the site-wide cap reads replicate_tasks_active by its status key, which covers
-- those two). Stored images get a random per-look prefix instead of the task id. Start's time
-- estimate reads the latest succeeded steps through an index, whatever the history's size.

ALTER TABLE replicate_tasks
    -- `looks/<file_prefix>/...` keys of this look's stored images; NULL for looks started
    -- before this migration (their keys are `tasks/<id>/...`, still read).
    ADD COLUMN file_prefix TEXT;

DROP INDEX replicate_tasks_user_active;
CREATE INDEX replicate_tasks_user_active ON replicate_tasks (user_id)
    WHERE status IN ('pending', 'processing');

CREATE INDEX replicate_task_steps_recent_success ON replicate_task_steps (completed_at DESC)
    WHERE status = 'succeeded' AND started_at IS NOT NULL;
