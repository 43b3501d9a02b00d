-- BatteryCRM tables as the fake n8n keeps them (SQLite dialect).
-- simulator/n8n/crm.py creates its tables from this file.
CREATE TABLE IF NOT EXISTS appeals (
    id INTEGER PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    channel TEXT NOT NULL,
    external_user_id TEXT NOT NULL,
    external_chat_id TEXT NOT NULL,
    client_name TEXT,
    status TEXT NOT NULL CHECK (status IN ('open', 'waiting_operator', 'answered', 'failed')),
    batches INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (tenant_id, channel, external_user_id, external_chat_id)
);
CREATE TABLE IF NOT EXISTS batches (
    id INTEGER PRIMARY KEY,
    appeal_id INTEGER REFERENCES appeals (id),
    tenant_id TEXT NOT NULL,
    channel TEXT NOT NULL,
    external_user_id TEXT NOT NULL,
    external_chat_id TEXT NOT NULL,
    text TEXT NOT NULL,
    messages TEXT NOT NULL,
    opened_at TEXT NOT NULL,
    closed_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS messages_history (
    id INTEGER PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    appeal_id INTEGER NOT NULL REFERENCES appeals (id),
    message_type TEXT NOT NULL CHECK (message_type IN ('ai', 'operator')),
    channel TEXT NOT NULL,
    text TEXT NOT NULL,
    external_message_id TEXT,
    status TEXT NOT NULL CHECK (status IN ('sent', 'failed')),
    error TEXT,
    created_at TEXT NOT NULL
);
-- Delivery to n8n is at-least-once: BAT IN records each message id once and ignores a repeat.
CREATE TABLE IF NOT EXISTS inbound_messages (
    channel TEXT NOT NULL,
    external_message_id TEXT NOT NULL,
    received_at TEXT NOT NULL,
    PRIMARY KEY (channel, external_message_id)
);
CREATE TABLE IF NOT EXISTS rejected (
    id INTEGER PRIMARY KEY,
    received_at TEXT NOT NULL,
    reason TEXT NOT NULL,
    body TEXT
);
