"""The gateway's durable state in SQLite (WAL): inbound events, outbox, sends, idempotency.

Persist first, then act: a webhook is committed (deduplicated on account +
message id in the same transaction) before Avito gets its 200, and the
outbox survives restarts. Every failed write is a :class:`StorageError` and
is remembered until a write succeeds, so ``/health`` tells the truth on a full
disk. :meth:`GatewayStore.sweep` keeps the file bounded (retention).
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

from avito_gateway.errors import StorageError

__all__ = ["GatewayStore", "OutboxItem", "InboundRecord", "MAX_SQL_INT", "REJECTED_BODY_CHARS"]

#: SQLite integers are signed 64-bit; larger ids cannot be stored or looked up.
MAX_SQL_INT = 2**63 - 1
#: Enough of a refused body to see what it was; junk cannot grow the file.
REJECTED_BODY_CHARS = 4096

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
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL);
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
        self._db.execute("PRAGMA auto_vacuum=INCREMENTAL")  # takes effect on a new file; old ones: see sweep()
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)
        #: The last write that failed (cleared by the next one that succeeds).
        self.write_error: str | None = None

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _tx(self, *, probe: bool = False) -> Iterator[sqlite3.Connection]:
        """One write transaction. A failure is remembered in :attr:`write_error` until a real (non-probe) write
        succeeds: a probe can fit in pages that are already there while real writes need new ones."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    yield self._db
                    self._db.execute("COMMIT")
                except BaseException:
                    if self._db.in_transaction:
                        self._db.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                self.write_error = f"{type(exc).__name__}: {exc}"
                raise StorageError(f"storage write failed: {exc}") from None
            if not probe:
                self.write_error = None

    def writable(self, now: float) -> bool:
        """A committed probe write succeeds and no real write has failed since the last one that succeeded."""
        try:
            with self._tx(probe=True) as db:
                db.execute("DELETE FROM probe")
                db.execute("INSERT INTO probe (k, v) VALUES (?, ?)", (f"health-{now}-{'x' * 4096}", now))
        except StorageError:
            return False
        return self.write_error is None

    def get_meta(self, key: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT v FROM meta WHERE k = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        with self._tx() as db:
            db.execute("INSERT OR REPLACE INTO meta (k, v) VALUES (?, ?)", (key, value))

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
            db.execute("INSERT INTO rejected (received_at, reason, body) VALUES (?, ?, ?)",
                       (now, reason[:500], body[:REJECTED_BODY_CHARS]))

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
        """Delivered: the prepared payload is dropped at once (the raw webhook stays until the retention sweep)."""
        with self._tx() as db:
            db.execute("UPDATE outbox SET status = 'delivered', delivered_at = ?, attempts = attempts + 1,"
                       " last_error = NULL, payload = NULL WHERE id = ?", (now, item_id))

    def oldest_pending(self) -> float | None:
        """When the oldest item still waiting for n8n arrived (None: nothing waits)."""
        with self._lock:
            row = self._db.execute("SELECT MIN(created_at) FROM outbox WHERE status = 'pending'").fetchone()
        return None if row[0] is None else float(row[0])

    def failed(self, item_id: int, error: str, next_at: float, dead: bool) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE outbox SET attempts = attempts + 1, last_error = ?, next_attempt_at = ?, status = ?"
                " WHERE id = ?",
                (error[:500], next_at, "dead" if dead else "pending", item_id),
            )

    def replay(self, item_id: int | None, now: float) -> int:
        """Dead letters (one, or all) back to pending, due now, with a fresh attempt count."""
        if item_id is not None and not 0 < item_id <= MAX_SQL_INT:
            return 0
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

    def is_seller_reply(self, message_id: str) -> bool:
        """A message our account wrote in the Avito app (it came as a webhook, and we did not send it)."""
        with self._lock:
            row = self._db.execute("SELECT 1 FROM inbound WHERE message_id = ? AND kind = 'seller_reply'",
                                   (message_id,)).fetchone()
            return row is not None

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

    # --- retention ---------------------------------------------------------
    def sweep(self, now: float, keep_seconds: float, rejected_keep: int) -> dict[str, int]:
        """Forget what is older than ``keep_seconds`` and no longer needed, then give the space back.

        Kept regardless of age: items still pending or dead (they are work). Dedupe keys live as long as
        their inbound row, so a redelivery within the retention window is still recognised.
        """
        cutoff = now - keep_seconds
        with self._tx() as db:
            removed = {
                "outbox": db.execute("DELETE FROM outbox WHERE status = 'delivered' AND delivered_at < ?",
                                     (cutoff,)).rowcount,
                "inbound": db.execute(
                    "DELETE FROM inbound WHERE received_at < ? AND id NOT IN (SELECT inbound_id FROM outbox)",
                    (cutoff,)).rowcount,
                "rejected": db.execute(
                    "DELETE FROM rejected WHERE received_at < ? OR id <= (SELECT MAX(id) FROM rejected) - ?",
                    (cutoff, rejected_keep)).rowcount,
                "sent": db.execute("DELETE FROM sent WHERE created_at < ?", (cutoff,)).rowcount,
                "idempotency": db.execute("DELETE FROM idempotency WHERE created_at < ? AND status IS NOT NULL",
                                          (cutoff,)).rowcount,
            }
        with self._lock:
            try:
                if self._db.execute("PRAGMA auto_vacuum").fetchone()[0] == 0:
                    self._db.execute("PRAGMA auto_vacuum=INCREMENTAL")
                    self._db.execute("VACUUM")  # once, for a file made before retention existed
                self._db.execute("PRAGMA incremental_vacuum")
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error as exc:
                self.write_error = f"{type(exc).__name__}: {exc}"
                raise StorageError(f"storage vacuum failed: {exc}") from None
        return removed

    def size_bytes(self) -> int:
        """The database file and its WAL."""
        total = 0
        for suffix in ("", "-wal"):
            try:
                total += Path(str(self.path) + suffix).stat().st_size
            except OSError:
                pass
        return total
