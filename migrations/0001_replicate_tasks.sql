CREATE TABLE replicate_tasks (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    status TEXT CHECK (status IN ('pending', 'processing', 'waiting_continue', 'completed', 'failed')),
    person_image TEXT NOT NULL,
    garments TEXT NOT NULL,
    prompt_hints TEXT,
    result_url TEXT,
    error_message TEXT,
    prediction_id TEXT,
    intermediate_result TEXT,
    current_step INTEGER DEFAULT 0,
    total_steps INTEGER DEFAULT 0,
    created_at TIMESTAMP DEFAULT NOW(),
    updated_at TIMESTAMP
);
