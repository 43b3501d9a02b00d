"""The gateway's store on PostgreSQL (``DATABASE_URL=postgresql://...``): the same behaviour as the SQLite
file, shared by any number of replicas.

Tables live in their own schema (``avito_gateway``), so the gateway can share a database with the CRM.
Outbox items are claimed with ``FOR UPDATE SKIP LOCKED``: two replicas asking at once get different chats,
never the same item; rate-limit decisions for one account are serialised with a transaction-scoped
advisory lock. One connection per process, used under a lock like the SQLite file; a connection the server
dropped is replaced on the next call (the failed call is a :class:`StorageError`, as on a full disk).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg.rows import dict_row

from avito_gateway.store import OutboxItem, Store

__all__ = ["PostgresStore", "SCHEMA_NAME"]

SCHEMA_NAME = "avito_gateway"
#: Any constant: replicas starting together create the tables one after another.
_SCHEMA_LOCK = 0x61766974

POSTGRES_SCHEMA = f"""
CREATE SCHEMA IF NOT EXISTS {SCHEMA_NAME};
CREATE TABLE IF NOT EXISTS inbound (
    id BIGSERIAL PRIMARY KEY,
    account BIGINT NOT NULL,
    message_id TEXT NOT NULL,
    chat_id TEXT NOT NULL,
    author_id BIGINT,
    kind TEXT NOT NULL,
    received_at DOUBLE PRECISION NOT NULL,
    raw TEXT NOT NULL,
    UNIQUE (account, message_id)
);
CREATE INDEX IF NOT EXISTS inbound_message ON inbound (message_id);
CREATE TABLE IF NOT EXISTS rejected (
    id BIGSERIAL PRIMARY KEY,
    received_at DOUBLE PRECISION NOT NULL,
    reason TEXT NOT NULL,
    body TEXT,
    account BIGINT
);
CREATE TABLE IF NOT EXISTS outbox (
    id BIGSERIAL PRIMARY KEY,
    inbound_id BIGINT NOT NULL REFERENCES inbound(id),
    chat_id TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at DOUBLE PRECISION NOT NULL,
    last_error TEXT,
    payload TEXT,
    created_at DOUBLE PRECISION NOT NULL,
    delivered_at DOUBLE PRECISION,
    claimed_by TEXT,
    claimed_until DOUBLE PRECISION
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (status, next_attempt_at);
CREATE INDEX IF NOT EXISTS outbox_chat_pending ON outbox (chat_id, id) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS outbox_inbound ON outbox (inbound_id);
CREATE TABLE IF NOT EXISTS sent (
    message_id TEXT PRIMARY KEY,
    chat_id TEXT NOT NULL,
    text TEXT,
    created_at DOUBLE PRECISION NOT NULL
);
CREATE TABLE IF NOT EXISTS idempotency (
    key TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    status INTEGER,
    response TEXT,
    created_at DOUBLE PRECISION NOT NULL,
    claimed_until DOUBLE PRECISION
);
CREATE TABLE IF NOT EXISTS recent_sends (chat_id TEXT NOT NULL, text_hash TEXT NOT NULL, at DOUBLE PRECISION NOT NULL);
CREATE INDEX IF NOT EXISTS recent_sends_chat ON recent_sends (chat_id, text_hash);
CREATE TABLE IF NOT EXISTS rate_slots (scope TEXT NOT NULL, at DOUBLE PRECISION NOT NULL);
CREATE INDEX IF NOT EXISTS rate_slots_scope ON rate_slots (scope, at);
CREATE TABLE IF NOT EXISTS health_probe (k TEXT PRIMARY KEY, v DOUBLE PRECISION, pad TEXT);
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL);
"""


def _pg(sql: str) -> str:
    """The portable SQL's ``?`` placeholders in psycopg's style (no statement here holds a literal ``?`` or ``%``)."""
    return sql.replace("?", "%s")


def _params(params: Sequence[Any]) -> tuple[Any, ...]:
    """PostgreSQL text cannot hold NUL: a hostile body, a sent text or an error message carrying one is stored with
    U+FFFD in its place (SQLite keeps it), instead of failing the write and, for a webhook, asking Avito to
    deliver the same poison again and again."""
    return tuple(p.replace("\x00", "\ufffd") if isinstance(p, str) and "\x00" in p else p for p in params)


class PostgresStore(Store):
    shared = True
    engine = "postgres"

    def __init__(self, url: str, *, connect_timeout: float = 10.0) -> None:
        super().__init__()
        self.url = url
        self._connect_timeout = connect_timeout
        self._db: psycopg.Connection[dict[str, Any]] | None = None
        try:
            db = self._conn()
            db.execute("SELECT pg_advisory_lock(%s)", (_SCHEMA_LOCK,))
            try:
                db.execute(POSTGRES_SCHEMA)
            finally:
                db.execute("SELECT pg_advisory_unlock(%s)", (_SCHEMA_LOCK,))
        except psycopg.Error as exc:
            self.close()
            raise ConnectionError(f"cannot use DATABASE_URL: {str(exc).strip()}") from None

    def _conn(self) -> psycopg.Connection[dict[str, Any]]:
        if self._db is None or self._db.closed or self._db.broken:
            if self._db is not None:
                self._db.close()
            self._db = psycopg.connect(self.url, autocommit=True, row_factory=dict_row,
                                       connect_timeout=max(1, int(self._connect_timeout)),
                                       options=f"-c search_path={SCHEMA_NAME}", application_name="avito-gateway")
        return self._db

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()

    def _begin(self) -> psycopg.Connection[dict[str, Any]]:
        db = self._conn()
        db.execute("BEGIN")
        return db

    def _end(self, db: psycopg.Connection[dict[str, Any]], commit: bool) -> None:
        if commit:
            db.execute("COMMIT")
        elif not db.closed and not db.broken:
            db.execute("ROLLBACK")

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return self._conn().execute(_pg(sql), _params(params)).fetchall()

    def _exec(self, db: psycopg.Connection[dict[str, Any]], sql: str, params: Sequence[Any] = ()) -> Any:
        return db.execute(_pg(sql), _params(params))

    def _single(self, sql: str, params: Sequence[Any]) -> tuple[list[Any], int]:
        cursor = self._conn().execute(_pg(sql), _params(params))  # autocommit: one round trip, atomic
        return (cursor.fetchall() if cursor.description else []), cursor.rowcount

    # One statement each for the two hot paths (every webhook, every forward): no BEGIN/COMMIT round trips.
    def record_inbound(
        self, *, account: int, message_id: str, chat_id: str, author_id: int | None, kind: str, raw: dict[str, Any],
        now: float, forward: bool,
    ) -> bool:
        rows, _ = self._write(
            "WITH ins AS (INSERT INTO inbound (account, message_id, chat_id, author_id, kind, received_at, raw)"
            " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (account, message_id) DO NOTHING RETURNING id),"
            " box AS (INSERT INTO outbox (inbound_id, chat_id, next_attempt_at, created_at)"
            " SELECT id, ?, ?, ? FROM ins WHERE ? RETURNING id)"
            " SELECT (SELECT COUNT(*) FROM ins) AS stored, (SELECT COUNT(*) FROM box) AS queued",
            (account, message_id, chat_id, author_id, kind, now, json.dumps(raw, ensure_ascii=False),
             chat_id, now, now, forward))
        return bool(rows[0]["stored"])

    def claim(self, now: float, limit: int, owner: str, lease: float) -> list[OutboxItem]:
        if limit <= 0:
            return []
        rows, _ = self._write(
            "WITH heads AS (SELECT MIN(id) AS id FROM outbox WHERE status = 'pending' GROUP BY chat_id),"
            " pick AS (SELECT o.id FROM outbox o JOIN heads h ON h.id = o.id WHERE o.next_attempt_at <= ?"
            " AND (o.claimed_until IS NULL OR o.claimed_until <= ?) ORDER BY o.id LIMIT ? FOR UPDATE OF o SKIP LOCKED),"
            " claimed AS (UPDATE outbox SET claimed_by = ?, claimed_until = ? FROM pick WHERE outbox.id = pick.id"
            " RETURNING outbox.*)"
            " SELECT c.*, i.raw, i.account FROM claimed c JOIN inbound i ON i.id = c.inbound_id ORDER BY c.id",
            (now, now, limit, owner, now + lease))
        return [self._item(r) for r in rows]

    def _errors(self) -> tuple[type[BaseException], ...]:
        return (psycopg.Error,)

    def _lock_scope(self, db: psycopg.Connection[dict[str, Any]], scope: str) -> None:
        db.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (scope,))

    def _vacuum(self) -> None:
        pass  # the server's autovacuum does it

    def size_bytes(self) -> int:
        rows = self._rows("SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0) AS n FROM pg_class c"
                          " JOIN pg_namespace s ON s.oid = c.relnamespace WHERE s.nspname = ? AND c.relkind = 'r'",
                          (SCHEMA_NAME,))
        return int(rows[0]["n"])

    def reset(self) -> None:
        """Drop every table (tests, and ``avito-gateway`` never calls it)."""
        with self._lock:
            self._conn().execute(f"DROP SCHEMA IF EXISTS {SCHEMA_NAME} CASCADE")
            self._conn().execute(POSTGRES_SCHEMA)
