"""The gateway's tables, written once for both engines.

:data:`SCHEMA` names column types by role (``{pk}``, ``{int}``, ``{real}``); :func:`schema_sql` fills them in
for SQLite or PostgreSQL. :data:`LATER_COLUMNS` are columns added after a table first shipped: a database made
by an older gateway gets them on opening, on either engine, so the two never drift apart (a test compares the
columns and indexes the two engines end up with).
"""

from __future__ import annotations

from typing import Literal

__all__ = ["Dialect", "LATER_COLUMNS", "SCHEMA", "SCHEMA_NAME", "add_column_sql", "schema_sql"]

Dialect = Literal["sqlite", "postgres"]
#: PostgreSQL keeps the tables in their own schema, so the gateway can share a database with the CRM.
SCHEMA_NAME = "avito_gateway"

_TYPES: dict[Dialect, dict[str, str]] = {
    "sqlite": {"pk": "INTEGER PRIMARY KEY", "int": "INTEGER", "real": "REAL"},
    "postgres": {"pk": "BIGSERIAL PRIMARY KEY", "int": "BIGINT", "real": "DOUBLE PRECISION"},
}

SCHEMA = """
CREATE TABLE IF NOT EXISTS inbound (
    id {pk},
    account {int} NOT NULL,
    message_id TEXT NOT NULL,
    chat_id TEXT NOT NULL,
    author_id {int},
    kind TEXT NOT NULL,
    received_at {real} NOT NULL,
    raw TEXT NOT NULL,
    UNIQUE (account, message_id)
);
CREATE INDEX IF NOT EXISTS inbound_message ON inbound (message_id);
CREATE TABLE IF NOT EXISTS rejected (
    id {pk},
    received_at {real} NOT NULL,
    reason TEXT NOT NULL,
    body TEXT
);
CREATE TABLE IF NOT EXISTS outbox (
    id {pk},
    inbound_id {int} NOT NULL REFERENCES inbound(id),
    chat_id TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at {real} NOT NULL,
    last_error TEXT,
    payload TEXT,
    created_at {real} NOT NULL,
    delivered_at {real}
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (status, next_attempt_at);
CREATE INDEX IF NOT EXISTS outbox_chat_pending ON outbox (chat_id, id) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS outbox_inbound ON outbox (inbound_id);
CREATE TABLE IF NOT EXISTS sent (
    message_id TEXT PRIMARY KEY,
    chat_id TEXT NOT NULL,
    text TEXT,
    created_at {real} NOT NULL
);
CREATE TABLE IF NOT EXISTS idempotency (
    key TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    status INTEGER,
    response TEXT,
    created_at {real} NOT NULL
);
CREATE TABLE IF NOT EXISTS recent_sends (chat_id TEXT NOT NULL, text_hash TEXT NOT NULL, at {real} NOT NULL);
CREATE INDEX IF NOT EXISTS recent_sends_chat ON recent_sends (chat_id, text_hash);
CREATE TABLE IF NOT EXISTS rate_slots (scope TEXT NOT NULL, at {real} NOT NULL);
CREATE INDEX IF NOT EXISTS rate_slots_scope ON rate_slots (scope, at);
CREATE TABLE IF NOT EXISTS health_probe (k TEXT PRIMARY KEY, v {real}, pad TEXT);
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL);
"""

#: Columns added after their table first shipped: (table, column, type by role).
LATER_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("rejected", "account", "{int}"),
    ("outbox", "claimed_by", "TEXT"),
    ("outbox", "claimed_until", "{real}"),
    ("idempotency", "claimed_until", "{real}"),
    # fencing tokens: every claim of an item or a key counts up; a write carrying an older one is refused
    ("outbox", "claim_generation", "INTEGER NOT NULL DEFAULT 0"),
    ("idempotency", "generation", "INTEGER NOT NULL DEFAULT 0"),
)


def schema_sql(dialect: Dialect) -> str:
    """Every ``CREATE ... IF NOT EXISTS`` in ``dialect`` (PostgreSQL: inside :data:`SCHEMA_NAME`)."""
    sql = SCHEMA.format(**_TYPES[dialect])
    if dialect == "postgres":
        sql = f"CREATE SCHEMA IF NOT EXISTS {SCHEMA_NAME};\n{sql}"
    return sql


def add_column_sql(dialect: Dialect, table: str, column: str, kind: str) -> str:
    """``ALTER TABLE`` adding one of :data:`LATER_COLUMNS` (PostgreSQL: a no-op when it is there)."""
    if_missing = " IF NOT EXISTS" if dialect == "postgres" else ""
    return f"ALTER TABLE {table} ADD COLUMN{if_missing} {column} {kind.format(**_TYPES[dialect])}"
