"""The gateway's durable state: inbound events, outbox, sends, idempotency, shared rate-limit slots.

One interface, two engines: :class:`SqliteStore` (one process, a WAL file in
``DATA_DIR``) and :class:`~avito_gateway.store_postgres.PostgresStore`
(``DATABASE_URL=postgresql://...``, any number of replicas). The SQL is
written once here in the dialect both understand (``ON CONFLICT``,
``RETURNING``); an engine supplies its schema, its transaction and how it
claims outbox items.

Persist first, then act: a webhook is committed (deduplicated on account +
message id by a unique constraint, in the same transaction) before Avito gets
its 200. Outbox items are *claimed* with a lease before they are forwarded,
so two replicas never forward the same item at once and a killed replica's
claims come back when its lease runs out; only the oldest pending item of a
chat can be claimed, which keeps each chat's order across replicas. Every
failed write is a :class:`StorageError` and is remembered until a write
succeeds, so ``/health`` tells the truth on a full disk or a lost server.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from avito_gateway.errors import StorageError

__all__ = ["Store", "SqliteStore", "GatewayStore", "OutboxItem", "InboundRecord", "MAX_SQL_INT",
           "REJECTED_BODY_CHARS"]

#: SQL integers are signed 64-bit; larger ids cannot be stored or looked up.
MAX_SQL_INT = 2**63 - 1
#: Enough of a refused body to see what it was; junk cannot grow the database.
REJECTED_BODY_CHARS = 4096
#: Sends under way are remembered this long (seconds) for echo recognition across replicas.
RECENT_SENDS_KEEP = 600

SQLITE_SCHEMA = """
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
CREATE TABLE IF NOT EXISTS recent_sends (chat_id TEXT NOT NULL, text_hash TEXT NOT NULL, at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS recent_sends_chat ON recent_sends (chat_id, text_hash);
CREATE TABLE IF NOT EXISTS rate_slots (scope TEXT NOT NULL, at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS rate_slots_scope ON rate_slots (scope, at);
CREATE TABLE IF NOT EXISTS health_probe (k TEXT PRIMARY KEY, v REAL, pad TEXT);
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL);
"""
#: Columns added after the first release: (table, column, type); an older file gets them on opening.
LATER_COLUMNS = (
    ("rejected", "account", "INTEGER"),
    ("outbox", "claimed_by", "TEXT"),
    ("outbox", "claimed_until", "REAL"),
    ("idempotency", "claimed_until", "REAL"),
)


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
    account: int = 0
    claimed_by: str | None = None  # the replica forwarding it now
    claimed_until: float | None = None

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
            "claimed_by": self.claimed_by,
            "claimed_until": self.claimed_until,
        }


@dataclass
class IdempotencyRecord:
    fingerprint: str
    status: int | None
    response: dict[str, Any] | None
    claimed_until: float | None


def _account_filter(column: str, accounts: Sequence[int] | None, *, unattributed: bool = False) -> tuple[str, tuple[Any, ...]]:
    """``AND column IN (...)`` for an API key's accounts (None: every account, the single-account gateway)."""
    if accounts is None:
        return "", ()
    marks = ", ".join("?" for _ in accounts) or "NULL"
    either = f" OR {column} IS NULL" if unattributed else ""
    return f" AND ({column} IN ({marks}){either})", tuple(accounts)


class Store(ABC):
    """What the gateway keeps, whatever the engine. Rows come back as mappings (``row["column"]``)."""

    #: Several processes may share it (claims and rate-limit slots then matter between them).
    shared: bool = False
    #: The engine's name, for /health and the logs.
    engine: str = "?"

    def __init__(self) -> None:
        self._lock = threading.RLock()
        #: The last write that failed (cleared by the next one that succeeds).
        self.write_error: str | None = None

    # --- engine ------------------------------------------------------------
    @abstractmethod
    def _begin(self) -> Any:
        """Start a write transaction and return the connection to run it on."""

    @abstractmethod
    def _end(self, db: Any, commit: bool) -> None: ...

    @abstractmethod
    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """Rows of one read outside a write transaction."""

    @abstractmethod
    def _exec(self, db: Any, sql: str, params: Sequence[Any] = ()) -> Any:
        """Run one statement inside a transaction; returns the cursor."""

    @abstractmethod
    def _errors(self) -> tuple[type[BaseException], ...]: ...

    @abstractmethod
    def _lock_scope(self, db: Any, scope: str) -> None:
        """Inside a transaction: serialise rate-limit decisions for ``scope`` between processes."""

    @abstractmethod
    def close(self) -> None: ...

    @abstractmethod
    def size_bytes(self) -> int:
        """What the gateway's tables take on disk."""

    @abstractmethod
    def _vacuum(self) -> None:
        """Give freed space back (engines that need it)."""

    @abstractmethod
    def _single(self, sql: str, params: Sequence[Any]) -> tuple[list[Any], int]:
        """One statement, atomic on its own (no BEGIN/COMMIT round trips): its rows and its row count."""

    @contextmanager
    def _tracked(self, probe: bool = False) -> Iterator[None]:
        """A failed write is remembered in :attr:`write_error` until a real (non-probe) write succeeds: a probe
        can fit in pages that are already there while real writes need new ones."""
        try:
            yield
        except self._errors() as exc:
            self.write_error = f"{type(exc).__name__}: {exc}".strip()
            raise StorageError(f"storage write failed: {exc}".strip()) from None
        if not probe:
            self.write_error = None

    @contextmanager
    def _tx(self, *, probe: bool = False) -> Iterator[Any]:
        """One write transaction of several statements."""
        with self._lock, self._tracked(probe):
            db = self._begin()
            try:
                yield db
            except BaseException:
                self._end(db, commit=False)
                raise
            self._end(db, commit=True)

    def _write(self, sql: str, params: Sequence[Any] = (), *, probe: bool = False) -> tuple[list[Any], int]:
        with self._lock, self._tracked(probe):
            return self._single(sql, params)

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        with self._lock:
            try:
                return self._read(sql, params)
            except self._errors() as exc:
                raise StorageError(f"storage read failed: {exc}".strip()) from None

    def writable(self, now: float) -> bool:
        """A committed probe write succeeds and no real write has failed since the last one that succeeded."""
        try:
            self._write("INSERT INTO health_probe (k, v, pad) VALUES ('health', ?, ?)"
                        " ON CONFLICT (k) DO UPDATE SET v = excluded.v, pad = excluded.pad",
                        (now, f"{now}-{'x' * 4096}"), probe=True)
        except StorageError:
            return False
        return self.write_error is None

    def get_meta(self, key: str) -> str | None:
        rows = self._rows("SELECT v FROM meta WHERE k = ?", (key,))
        return None if not rows else str(rows[0]["v"])

    def set_meta(self, key: str, value: str) -> None:
        self._write("INSERT INTO meta (k, v) VALUES (?, ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v", (key, value))

    def meta_once(self, key: str, value: str) -> str:
        """Set ``key`` unless some process already did; returns the value that won (one for every replica)."""
        with self._tx() as db:
            self._exec(db, "INSERT INTO meta (k, v) VALUES (?, ?) ON CONFLICT (k) DO NOTHING", (key, value))
            return str(self._exec(db, "SELECT v FROM meta WHERE k = ?", (key,)).fetchall()[0]["v"])

    # --- inbound -----------------------------------------------------------
    def record_inbound(
        self, *, account: int, message_id: str, chat_id: str, author_id: int | None, kind: str, raw: dict[str, Any],
        now: float, forward: bool,
    ) -> bool:
        """Store one webhook message (and its outbox entry); False if it was already there."""
        with self._tx() as db:
            row = self._exec(
                db,
                "INSERT INTO inbound (account, message_id, chat_id, author_id, kind, received_at, raw)"
                " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (account, message_id) DO NOTHING RETURNING id",
                (account, message_id, chat_id, author_id, kind, now, json.dumps(raw, ensure_ascii=False)),
            ).fetchall()  # all rows: SQLite cannot commit under an unfinished statement
            if not row:
                return False
            if forward:
                self._exec(db, "INSERT INTO outbox (inbound_id, chat_id, next_attempt_at, created_at) VALUES (?, ?, ?, ?)",
                           (row[0]["id"], chat_id, now, now))
            return True

    def record_rejected(self, reason: str, body: str, now: float, account: int | None = None) -> None:
        self._write("INSERT INTO rejected (received_at, reason, body, account) VALUES (?, ?, ?, ?)",
                    (now, reason[:500], body[:REJECTED_BODY_CHARS], account))

    def inbound(self, kind: str | None = None, limit: int = 100, accounts: Sequence[int] | None = None) -> list[InboundRecord]:
        where, params = _account_filter("account", accounts)
        if kind:
            where, params = where + " AND kind = ?", (*params, kind)
        rows = self._rows(f"SELECT * FROM inbound WHERE 1=1{where} ORDER BY id DESC LIMIT ?", (*params, limit))
        return [
            InboundRecord(r["id"], r["account"], r["message_id"], r["chat_id"], r["author_id"], r["kind"],
                          r["received_at"], json.loads(r["raw"]))
            for r in rows
        ]

    def rejected(self, limit: int = 100, accounts: Sequence[int] | None = None) -> list[dict[str, Any]]:
        where, params = _account_filter("account", accounts, unattributed=True)
        rows = self._rows(f"SELECT id, received_at, reason, body FROM rejected WHERE 1=1{where} ORDER BY id DESC LIMIT ?",
                          (*params, limit))
        return [dict(r) for r in rows]

    def counts(self, accounts: Sequence[int] | None = None) -> dict[str, int]:
        where, params = _account_filter("account", accounts)
        kinds = self._rows(f"SELECT kind, COUNT(*) AS n FROM inbound WHERE 1=1{where} GROUP BY kind", params)
        owned, params2 = _account_filter("i.account", accounts)
        outbox = self._rows("SELECT o.status, COUNT(*) AS n FROM outbox o JOIN inbound i ON i.id = o.inbound_id"
                            f" WHERE 1=1{owned} GROUP BY o.status", params2)
        rwhere, rparams = _account_filter("account", accounts, unattributed=True)
        rejected = self._rows(f"SELECT COUNT(*) AS n FROM rejected WHERE 1=1{rwhere}", rparams)[0]["n"]
        return {**{f"inbound_{r['kind']}": int(r["n"]) for r in kinds},
                **{f"outbox_{r['status']}": int(r["n"]) for r in outbox}, "rejected": int(rejected)}

    # --- outbox ------------------------------------------------------------
    _ITEM_SQL = "SELECT o.*, i.raw, i.account FROM outbox o JOIN inbound i ON i.id = o.inbound_id"

    @staticmethod
    def _item(row: Any) -> OutboxItem:
        return OutboxItem(
            row["id"], row["inbound_id"], row["chat_id"], row["status"], row["attempts"], row["next_attempt_at"],
            row["last_error"], json.loads(row["payload"]) if row["payload"] else None, row["created_at"],
            row["delivered_at"], json.loads(row["raw"]), row["account"], row["claimed_by"], row["claimed_until"],
        )

    def due(self, now: float, limit: int = 50) -> list[OutboxItem]:
        """Pending items due now, the oldest pending one per chat only (keeps per-chat order); claims ignored."""
        rows = self._rows(
            f"{self._ITEM_SQL} WHERE o.id IN (SELECT MIN(id) FROM outbox WHERE status = 'pending' GROUP BY chat_id)"
            " AND o.next_attempt_at <= ? ORDER BY o.id LIMIT ?",
            (now, limit),
        )
        return [self._item(r) for r in rows]

    @abstractmethod
    def claim(self, now: float, limit: int, owner: str, lease: float) -> list[OutboxItem]:
        """Claim up to ``limit`` due items for ``owner`` until ``now + lease``: each the oldest pending item of its
        chat, none claimed by anyone else (a lapsed claim is free again)."""

    def release_claims(self, owner: str, ids: Sequence[int] | None = None) -> int:
        """Give back what ``owner`` claimed and did not finish (all of it: a replica stopping cleanly)."""
        only = "" if ids is None else f" AND id IN ({', '.join('?' for _ in ids) or 'NULL'})"
        return self._write("UPDATE outbox SET claimed_by = NULL, claimed_until = NULL"
                           f" WHERE claimed_by = ? AND status = 'pending'{only}", (owner, *(ids or ())))[1]

    def outbox(self, status: str | None = None, limit: int = 100, accounts: Sequence[int] | None = None) -> list[OutboxItem]:
        where, params = _account_filter("i.account", accounts)
        if status:
            where, params = where + " AND o.status = ?", (*params, status)
        rows = self._rows(f"{self._ITEM_SQL} WHERE 1=1{where} ORDER BY o.id LIMIT ?", (*params, limit))
        return [self._item(r) for r in rows]

    def save_payload(self, item_id: int, payload: dict[str, Any]) -> None:
        self._write("UPDATE outbox SET payload = ? WHERE id = ?", (json.dumps(payload, ensure_ascii=False), item_id))

    def delivered(self, item_id: int, now: float) -> None:
        """Delivered: the prepared payload is dropped at once (the raw webhook stays until the retention sweep)."""
        self._write("UPDATE outbox SET status = 'delivered', delivered_at = ?, attempts = attempts + 1,"
                    " last_error = NULL, payload = NULL, claimed_by = NULL, claimed_until = NULL WHERE id = ?",
                    (now, item_id))

    def oldest_pending(self) -> float | None:
        """When the oldest item still waiting for n8n arrived (None: nothing waits)."""
        rows = self._rows("SELECT MIN(created_at) AS t FROM outbox WHERE status = 'pending'")
        return None if not rows or rows[0]["t"] is None else float(rows[0]["t"])

    def failed(self, item_id: int, error: str, next_at: float, dead: bool) -> None:
        self._write("UPDATE outbox SET attempts = attempts + 1, last_error = ?, next_attempt_at = ?, status = ?,"
                    " claimed_by = NULL, claimed_until = NULL WHERE id = ? AND status = 'pending'",
                    (error[:500], next_at, "dead" if dead else "pending", item_id))

    def replay(self, item_id: int | None, now: float, accounts: Sequence[int] | None = None) -> int:
        """Dead letters (one, or all) back to pending, due now, with a fresh attempt count."""
        if item_id is not None and not 0 < item_id <= MAX_SQL_INT:
            return 0
        owned, params = _account_filter("account", accounts)
        sql = ("UPDATE outbox SET status = 'pending', attempts = 0, next_attempt_at = ?, claimed_by = NULL,"
               " claimed_until = NULL WHERE status = 'dead'"
               f" AND inbound_id IN (SELECT id FROM inbound WHERE 1=1{owned})")
        if item_id is None:
            return self._write(sql, (now, *params))[1]
        return self._write(sql + " AND id = ?", (now, *params, item_id))[1]

    # --- our sends ---------------------------------------------------------
    def record_sent(self, message_id: str, chat_id: str, text: str | None, now: float) -> None:
        self._write("INSERT INTO sent (message_id, chat_id, text, created_at) VALUES (?, ?, ?, ?)"
                    " ON CONFLICT (message_id) DO NOTHING", (message_id, chat_id, text, now))

    def is_our_send(self, message_id: str) -> bool:
        return bool(self._rows("SELECT 1 AS one FROM sent WHERE message_id = ?", (message_id,)))

    def note_sending(self, chat_id: str, text_hash: str, now: float) -> None:
        """A send about to be posted, so that any replica recognises its echo before Avito answered it."""
        self._write("INSERT INTO recent_sends (chat_id, text_hash, at) VALUES (?, ?, ?)", (chat_id, text_hash, now))

    def sent_or_sending(self, message_id: str, chat_id: str, text_hash: str, since: float) -> bool:
        """:meth:`is_our_send`, or a send of these words to this chat noted (by any replica) since ``since``."""
        return bool(self._rows("SELECT 1 AS one FROM sent WHERE message_id = ?"
                               " UNION ALL SELECT 1 AS one FROM recent_sends WHERE chat_id = ? AND text_hash = ? AND at > ?",
                               (message_id, chat_id, text_hash, since)))

    def is_seller_reply(self, message_id: str) -> bool:
        """A message our account wrote in the Avito app (it came as a webhook, and we did not send it)."""
        return bool(self._rows("SELECT 1 AS one FROM inbound WHERE message_id = ? AND kind = 'seller_reply'",
                               (message_id,)))

    # --- idempotency -------------------------------------------------------
    def idempotency(self, key: str) -> IdempotencyRecord | None:
        rows = self._rows("SELECT fingerprint, status, response, claimed_until FROM idempotency WHERE key = ?", (key,))
        if not rows:
            return None
        r = rows[0]
        return IdempotencyRecord(r["fingerprint"], r["status"], json.loads(r["response"]) if r["response"] else None,
                                 r["claimed_until"])

    def idempotent_result(self, key: str) -> tuple[str, int | None, dict[str, Any] | None] | None:
        found = self.idempotency(key)
        return None if found is None else (found.fingerprint, found.status, found.response)

    def claim_idempotency(self, key: str, fingerprint: str, now: float, until: float | None = None) -> bool:
        """The key is ours to run: newly inserted, or left unfinished by a process whose claim ran out."""
        rows, _ = self._write(
            "INSERT INTO idempotency (key, fingerprint, created_at, claimed_until) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (key) DO UPDATE SET claimed_until = excluded.claimed_until, created_at = excluded.created_at"
            " WHERE idempotency.fingerprint = excluded.fingerprint AND idempotency.status IS NULL"
            " AND (idempotency.claimed_until IS NULL OR idempotency.claimed_until <= ?) RETURNING key",
            (key, fingerprint, now, until, now))
        return len(rows) == 1

    def finish_idempotency(self, key: str, status: int, response: dict[str, Any]) -> None:
        self._write("UPDATE idempotency SET status = ?, response = ?, claimed_until = NULL WHERE key = ?",
                    (status, json.dumps(response, ensure_ascii=False), key))

    def release_idempotency(self, key: str) -> None:
        self._write("DELETE FROM idempotency WHERE key = ? AND status IS NULL", (key,))

    # --- shared rate limit -------------------------------------------------
    def take_slots(self, scope: str, n: int, now: float, limit: int, window: float) -> float | None:
        """A sliding-window log kept in the database, so every replica counts the same requests: take ``n``
        slots of ``scope`` (None), or say how many seconds until they would be free."""
        with self._tx() as db:
            self._lock_scope(db, scope)
            self._exec(db, "DELETE FROM rate_slots WHERE scope = ? AND at <= ?", (scope, now - window))
            taken = [float(r["at"]) for r in
                     self._exec(db, "SELECT at FROM rate_slots WHERE scope = ? ORDER BY at", (scope,)).fetchall()]
            if len(taken) + n <= limit:
                for _ in range(n):
                    self._exec(db, "INSERT INTO rate_slots (scope, at) VALUES (?, ?)", (scope, now))
                return None
        if n > limit:
            return window
        return max(0.0, taken[len(taken) + n - limit - 1] + window - now)

    def slots_remaining(self, scope: str, now: float, limit: int, window: float) -> int:
        rows = self._rows("SELECT COUNT(*) AS n FROM rate_slots WHERE scope = ? AND at > ?", (scope, now - window))
        return max(0, limit - int(rows[0]["n"]))

    # --- retention ---------------------------------------------------------
    def sweep(self, now: float, keep_seconds: float, rejected_keep: int) -> dict[str, int]:
        """Forget what is older than ``keep_seconds`` and no longer needed, then give the space back.

        Kept regardless of age: items still pending or dead (they are work). Dedupe keys live as long as
        their inbound row, so a redelivery within the retention window is still recognised.
        """
        cutoff = now - keep_seconds
        with self._tx() as db:
            def run(sql: str, params: tuple[Any, ...]) -> int:
                return int(self._exec(db, sql, params).rowcount)

            removed = {
                "outbox": run("DELETE FROM outbox WHERE status = 'delivered' AND delivered_at < ?", (cutoff,)),
                "inbound": run("DELETE FROM inbound WHERE received_at < ? AND id NOT IN (SELECT inbound_id FROM outbox)",
                               (cutoff,)),
                "rejected": run("DELETE FROM rejected WHERE received_at < ?"
                                " OR id <= (SELECT MAX(id) FROM rejected) - ?", (cutoff, rejected_keep)),
                "sent": run("DELETE FROM sent WHERE created_at < ?", (cutoff,)),
                "recent_sends": run("DELETE FROM recent_sends WHERE at < ?", (now - RECENT_SENDS_KEEP,)),
                "idempotency": run("DELETE FROM idempotency WHERE created_at < ? AND status IS NOT NULL", (cutoff,)),
            }
        with self._lock:
            try:
                self._vacuum()
            except self._errors() as exc:
                self.write_error = f"{type(exc).__name__}: {exc}"
                raise StorageError(f"storage vacuum failed: {exc}") from None
        return removed


class SqliteStore(Store):
    """One SQLite file (WAL) under the data directory, for one gateway process; all access through one lock."""

    engine = "sqlite"

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA auto_vacuum=INCREMENTAL")  # takes effect on a new file; old ones: see sweep()
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SQLITE_SCHEMA)
        for table, column, kind in LATER_COLUMNS:
            present = {r["name"] for r in self._db.execute(f"PRAGMA table_info({table})")}
            if column not in present:
                self._db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
        # One process owns the file: whatever a previous run of it claimed is free again at once.
        self._db.execute("UPDATE outbox SET claimed_by = NULL, claimed_until = NULL WHERE claimed_by IS NOT NULL")
        self._db.execute("UPDATE idempotency SET claimed_until = NULL WHERE status IS NULL")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _begin(self) -> sqlite3.Connection:
        self._db.execute("BEGIN IMMEDIATE")
        return self._db

    def _end(self, db: sqlite3.Connection, commit: bool) -> None:
        if commit:
            db.execute("COMMIT")
        elif db.in_transaction:
            db.execute("ROLLBACK")

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return self._db.execute(sql, tuple(params)).fetchall()

    def _exec(self, db: sqlite3.Connection, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        return db.execute(sql, tuple(params))

    def _single(self, sql: str, params: Sequence[Any]) -> tuple[list[Any], int]:
        cursor = self._db.execute(sql, tuple(params))  # autocommit: the statement is its own transaction
        return cursor.fetchall(), cursor.rowcount

    def _errors(self) -> tuple[type[BaseException], ...]:
        return (sqlite3.Error,)

    def claim(self, now: float, limit: int, owner: str, lease: float) -> list[OutboxItem]:
        if limit <= 0:
            return []
        with self._tx() as db:  # BEGIN IMMEDIATE: no other writer between choosing the heads and marking them
            ids = [int(r["id"]) for r in db.execute(
                "SELECT id FROM outbox WHERE id IN (SELECT MIN(id) FROM outbox WHERE status = 'pending' GROUP BY chat_id)"
                " AND next_attempt_at <= ? AND (claimed_until IS NULL OR claimed_until <= ?) ORDER BY id LIMIT ?",
                (now, now, limit)).fetchall()]
            if not ids:
                return []
            marks = ", ".join("?" for _ in ids)
            self._exec(db, f"UPDATE outbox SET claimed_by = ?, claimed_until = ? WHERE id IN ({marks})",
                       (owner, now + lease, *ids))
            rows = self._exec(db, f"{self._ITEM_SQL} WHERE o.id IN ({marks}) ORDER BY o.id", ids).fetchall()
        return [self._item(r) for r in rows]

    def _lock_scope(self, db: sqlite3.Connection, scope: str) -> None:
        pass  # BEGIN IMMEDIATE already holds the file's write lock

    def _vacuum(self) -> None:
        if self._db.execute("PRAGMA auto_vacuum").fetchone()[0] == 0:
            self._db.execute("PRAGMA auto_vacuum=INCREMENTAL")
            self._db.execute("VACUUM")  # once, for a file made before retention existed
        self._db.execute("PRAGMA incremental_vacuum")
        self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def size_bytes(self) -> int:
        """The database file and its WAL."""
        total = 0
        for suffix in ("", "-wal"):
            try:
                total += Path(str(self.path) + suffix).stat().st_size
            except OSError:
                pass
        return total


#: The name the gateway used before there were two engines.
GatewayStore = SqliteStore
