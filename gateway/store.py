"""The gateway's durable state in SQLite (WAL): inbound events, outbox, sends, idempotency.

Persist first, then act: a webhook is committed (deduplicated on account +
message id in the same transaction) before Avito gets its 200, and the
outbox survives restarts.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["GatewayStore", "OutboxItem", "InboundRecord"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS inbound (
    id INTEGER PRIMARY KEY,
    account INTEGER NOT NULL,
    message_id TEXT NOT NULL,
    chat_id TEXT NOT NULL,
    author_id INTEGER,
    kind TEXT NOT NULL,
    received_at REAL NOT NULL,
    raw TEXT NOT NULL,
    UNIQUE (account, message_id)
);
CREATE TABLE IF NOT EXISTS rejected (
    id INTEGER PRIMARY KEY,
    received_at REAL NOT NULL,
    reason TEXT NOT NULL,
    body TEXT
);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY,
    inbound_id INTEGER NOT NULL REFERENCES inbound(id),
    chat_id TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    last_error TEXT,
    payload TEXT,
    created_at REAL NOT NULL,
    delivered_at REAL
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (status, next_attempt_at);
CREATE TABLE IF NOT EXISTS sent (
    message_id TEXT PRIMARY KEY,
    chat_id TEXT NOT NULL,
    text TEXT,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS idempotency (
    key TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    status INTEGER,
    response TEXT,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS probe (k TEXT PRIMARY KEY, v REAL);
"""


@dataclass
class InboundRecord:
    id: int
    account: int
    message_id: str
    chat_id: str
    author_id: int | None
    kind: str
    received_at: float
    raw: dict[str, Any]


@dataclass
class OutboxItem:
    id: int
    inbound_id: int
    chat_id: str
    status: str
    attempts: int
    next_attempt_at: float
    last_error: str | None
    payload: dict[str, Any] | None
    created_at: float
    delivered_at: float | None
    raw: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "chat_id": self.chat_id,
            "status": self.status,
            "attempts": self.attempts,
            "next_attempt_at": self.next_attempt_at,
            "last_error": self.last_error,
            "created_at": self.created_at,
            "delivered_at": self.delivered_at,
            "message_id": self.raw.get("payload", {}).get("value", {}).get("id"),
        }


class GatewayStore:
    """One SQLite file under the data directory; all access through one lock."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def writable(self, now: float) -> bool:
        try:
            with self._tx() as db:
                db.execute("INSERT OR REPLACE INTO probe (k, v) VALUES ('health', ?)", (now,))
            return True
        except sqlite3.Error:
            return False

    # --- inbound -----------------------------------------------------------
    def record_inbound(
        self, *, account: int, message_id: str, chat_id: str, author_id: int | None, kind: str, raw: dict[str, Any],
        now: float, forward: bool,
    ) -> bool:
        """Store one webhook message (and its outbox entry); False if it was already there."""
        with self._tx() as db:
            cur = db.execute(
                "INSERT OR IGNORE INTO inbound (account, message_id, chat_id, author_id, kind, received_at, raw)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (account, message_id, chat_id, author_id, kind, now, json.dumps(raw, ensure_ascii=False)),
            )
            if cur.rowcount == 0:
                return False
            if forward:
                db.execute(
                    "INSERT INTO outbox (inbound_id, chat_id, next_attempt_at, created_at) VALUES (?, ?, ?, ?)",
                    (cur.lastrowid, chat_id, now, now),
                )
            return True

    def record_rejected(self, reason: str, body: str, now: float) -> None:
        with self._tx() as db:
            db.execute("INSERT INTO rejected (received_at, reason, body) VALUES (?, ?, ?)", (now, reason, body[:65536]))

    def inbound(self, kind: str | None = None, limit: int = 100) -> list[InboundRecord]:
        with self._lock:
            sql = "SELECT * FROM inbound" + (" WHERE kind = ?" if kind else "") + " ORDER BY id DESC LIMIT ?"
            rows = self._db.execute(sql, ((kind, limit) if kind else (limit,))).fetchall()
        return [
            InboundRecord(r["id"], r["account"], r["message_id"], r["chat_id"], r["author_id"], r["kind"],
                          r["received_at"], json.loads(r["raw"]))
            for r in rows
        ]

    def rejected(self, limit: int = 100) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute("SELECT * FROM rejected ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
        return [dict(r) for r in rows]

    def counts(self) -> dict[str, int]:
        with self._lock:
            kinds = dict(self._db.execute("SELECT kind, COUNT(*) FROM inbound GROUP BY kind").fetchall())
            outbox = dict(self._db.execute("SELECT status, COUNT(*) FROM outbox GROUP BY status").fetchall())
            rejected = self._db.execute("SELECT COUNT(*) FROM rejected").fetchone()[0]
        return {**{f"inbound_{k}": v for k, v in kinds.items()}, **{f"outbox_{k}": v for k, v in outbox.items()},
                "rejected": rejected}

    # --- outbox ------------------------------------------------------------
    def _item(self, row: sqlite3.Row) -> OutboxItem:
        return OutboxItem(
            row["id"], row["inbound_id"], row["chat_id"], row["status"], row["attempts"], row["next_attempt_at"],
            row["last_error"], json.loads(row["payload"]) if row["payload"] else None, row["created_at"],
            row["delivered_at"], json.loads(row["raw"]),
        )

    def due(self, now: float, limit: int = 50) -> list[OutboxItem]:
        """Pending items due now, the oldest pending one per chat only (keeps per-chat order)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT o.*, i.raw FROM outbox o JOIN inbound i ON i.id = o.inbound_id"
                " WHERE o.id IN (SELECT MIN(id) FROM outbox WHERE status = 'pending' GROUP BY chat_id)"
                " AND o.next_attempt_at <= ? ORDER BY o.id LIMIT ?",
                (now, limit),
            ).fetchall()
        return [self._item(r) for r in rows]

    def outbox(self, status: str | None = None, limit: int = 100) -> list[OutboxItem]:
        with self._lock:
            sql = "SELECT o.*, i.raw FROM outbox o JOIN inbound i ON i.id = o.inbound_id"
            sql += (" WHERE o.status = ?" if status else "") + " ORDER BY o.id LIMIT ?"
            rows = self._db.execute(sql, ((status, limit) if status else (limit,))).fetchall()
        return [self._item(r) for r in rows]

    def save_payload(self, item_id: int, payload: dict[str, Any]) -> None:
        with self._tx() as db:
            db.execute("UPDATE outbox SET payload = ? WHERE id = ?", (json.dumps(payload, ensure_ascii=False), item_id))

    def delivered(self, item_id: int, now: float) -> None:
        with self._tx() as db:
            db.execute("UPDATE outbox SET status = 'delivered', delivered_at = ?, attempts = attempts + 1,"
                       " last_error = NULL WHERE id = ?", (now, item_id))

    def failed(self, item_id: int, error: str, next_at: float, dead: bool) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE outbox SET attempts = attempts + 1, last_error = ?, next_attempt_at = ?, status = ?"
                " WHERE id = ?",
                (error[:500], next_at, "dead" if dead else "pending", item_id),
            )

    def replay(self, item_id: int | None, now: float) -> int:
        """Dead letters (one, or all) back to pending, due now, with a fresh attempt count."""
        with self._tx() as db:
            if item_id is None:
                cur = db.execute("UPDATE outbox SET status = 'pending', attempts = 0, next_attempt_at = ?"
                                 " WHERE status = 'dead'", (now,))
            else:
                cur = db.execute("UPDATE outbox SET status = 'pending', attempts = 0, next_attempt_at = ?"
                                 " WHERE status = 'dead' AND id = ?", (now, item_id))
            return int(cur.rowcount)

    # --- our sends ---------------------------------------------------------
    def record_sent(self, message_id: str, chat_id: str, text: str | None, now: float) -> None:
        with self._tx() as db:
            db.execute("INSERT OR IGNORE INTO sent (message_id, chat_id, text, created_at) VALUES (?, ?, ?, ?)",
                       (message_id, chat_id, text, now))

    def is_our_send(self, message_id: str) -> bool:
        with self._lock:
            return self._db.execute("SELECT 1 FROM sent WHERE message_id = ?", (message_id,)).fetchone() is not None

    # --- idempotency -------------------------------------------------------
    def idempotent_result(self, key: str) -> tuple[str, int | None, dict[str, Any] | None] | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM idempotency WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        return row["fingerprint"], row["status"], json.loads(row["response"]) if row["response"] else None

    def claim_idempotency(self, key: str, fingerprint: str, now: float) -> bool:
        with self._tx() as db:
            cur = db.execute("INSERT OR IGNORE INTO idempotency (key, fingerprint, created_at) VALUES (?, ?, ?)",
                             (key, fingerprint, now))
            return cur.rowcount == 1

    def finish_idempotency(self, key: str, status: int, response: dict[str, Any]) -> None:
        with self._tx() as db:
            db.execute("UPDATE idempotency SET status = ?, response = ? WHERE key = ?",
                       (status, json.dumps(response, ensure_ascii=False), key))

    def release_idempotency(self, key: str) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM idempotency WHERE key = ? AND status IS NULL", (key,))
