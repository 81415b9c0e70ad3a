-- A look's life beyond its steps (issue 10): finishing looks left waiting, a user's list of
-- looks, read-only share links, and the completion webhook's outbox.

-- Looks waiting for their user, oldest first: the worker finishes those idle past LOOK_IDLE_FINISH_S.
CREATE INDEX replicate_tasks_waiting_since
    ON replicate_tasks (updated_at) WHERE status = 'waiting_continue';

-- "My looks": a user's looks newest first, paged by (created_at, id).
CREATE INDEX replicate_tasks_user_newest
    ON replicate_tasks (user_id, created_at DESC, id DESC);

-- Read-only links to a look. Only a SHA-256 of the token is kept: the table never holds a
-- working link. Unshare revokes every link of the look.
CREATE TABLE replicate_task_shares (
    token_hash TEXT PRIMARY KEY,
    task_id TEXT NOT NULL REFERENCES replicate_tasks (id) ON DELETE CASCADE,
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    revoked_at TIMESTAMPTZ
);
CREATE INDEX replicate_task_shares_task ON replicate_task_shares (task_id) WHERE revoked_at IS NULL;

-- The completion webhook's outbox: one row per look that ended, written by the same statement
-- that ended it, delivered (at least once) by worker runs. `id` is the webhook-id on every try;
-- `created_at` is when the look ended.
CREATE TABLE look_events (
    id TEXT PRIMARY KEY,
    task_id TEXT NOT NULL REFERENCES replicate_tasks (id) ON DELETE CASCADE,
    type TEXT NOT NULL CHECK (type IN ('look.completed', 'look.failed')),
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    payload TEXT,                 -- the JSON body, fixed on the first try so every retry sends the same
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    delivered_at TIMESTAMPTZ,
    last_error TEXT
);
CREATE INDEX look_events_due ON look_events (next_attempt_at) WHERE delivered_at IS NULL;
