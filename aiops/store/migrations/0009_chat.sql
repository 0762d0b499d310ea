-- Asking aiops in chat. Each message a platform delivered is recorded once, keyed by the channel and the
-- platform's own message id, so a redelivery is answered once; `outcome` says what became of it (queued, refused,
-- over_budget, answered, failed) and counts a person's questions for the hourly budget. Its one reply waits here
-- for the outbox (`reply_state` pending → sent | failed), counted in the channel's rate limit with its other
-- messages.
CREATE TABLE chat_messages (
    id {ID},
    channel VARCHAR(64) NOT NULL,
    kind VARCHAR(32) NOT NULL,
    message_id VARCHAR(255) NOT NULL,
    user_id VARCHAR(255) NOT NULL,
    conversation VARCHAR(255) NOT NULL,
    thread VARCHAR(255),
    incident_id BIGINT REFERENCES incidents (id),
    text TEXT NOT NULL,
    reply_to TEXT NOT NULL,
    direct BOOLEAN NOT NULL,
    outcome VARCHAR(16) NOT NULL,
    asked_at DOUBLE PRECISION NOT NULL,
    answered_at DOUBLE PRECISION,
    reply_body TEXT,
    reply_state VARCHAR(16),
    reply_error TEXT,
    replied_at DOUBLE PRECISION,
    UNIQUE (channel, message_id)
);
CREATE INDEX chat_messages_asker ON chat_messages (kind, user_id, asked_at);
CREATE INDEX chat_messages_replied ON chat_messages (channel, replied_at);
-- A thread's state: which incident it is about and its last questions and answers (bounded), for the next one.
CREATE TABLE conversations (
    channel VARCHAR(64) NOT NULL,
    conversation VARCHAR(255) NOT NULL,
    thread VARCHAR(255) NOT NULL,
    incident_id BIGINT REFERENCES incidents (id),
    turns TEXT NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (channel, conversation, thread)
);
-- The incident a card's handle belongs to, for a question asked in the card's thread.
CREATE INDEX messages_handle ON messages (channel, handle);
