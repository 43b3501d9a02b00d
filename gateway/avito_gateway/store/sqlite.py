"""The store in one SQLite file (WAL) under the data directory, for one gateway process.

Statements run inline (a local file answers in microseconds; the event loop never waits on a network), all
under one lock, so a caller on another thread (a test, the vacuum) is serialised with the loop's.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from avito_gateway.store.base import Store
from avito_gateway.store.engine import Done, Tx
from avito_gateway.store.outbox import DUE_SQL, ITEM_SQL
from avito_gateway.store.records import OutboxItem
from avito_gateway.store.schema import LATER_COLUMNS, add_column_sql, schema_sql

__all__ = ["SqliteStore"]

T = TypeVar("T")


class _SqliteTx:
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    async def run(self, sql: str, params: Sequence[Any] = ()) -> Done:
        cursor = self.db.execute(sql, tuple(params))
        return Done(cursor.fetchall(), cursor.rowcount)  # all rows: SQLite cannot commit under an open statement


class SqliteStore(Store):
    engine = "sqlite"

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path
        self._lock = threading.RLock()
        _private_file(path)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA auto_vacuum=INCREMENTAL")  # takes effect on a new file; old ones: see sweep()
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(schema_sql("sqlite"))
        for table, column, kind in LATER_COLUMNS:
            present = {r["name"] for r in self._db.execute(f"PRAGMA table_info({table})")}
            if column not in present:
                self._db.execute(add_column_sql("sqlite", table, column, kind))
        # One process owns the file: whatever a previous run of it claimed is free again at once.
        self._db.execute("UPDATE outbox SET claimed_by = NULL, claimed_until = NULL WHERE claimed_by IS NOT NULL")
        self._db.execute("UPDATE idempotency SET claimed_until = NULL WHERE status IS NULL")

    async def close(self) -> None:
        with self._lock:
            self._db.close()

    async def _statement(self, sql: str, params: Sequence[Any]) -> Done:
        with self._lock:
            cursor = self._db.execute(sql, tuple(params))  # autocommit: the statement is its own transaction
            return Done(cursor.fetchall(), cursor.rowcount)

    async def _transaction(self, work: Callable[[Tx], Awaitable[T]]) -> T:
        # The lock is held across ``work``'s awaits, which complete at once here (statements run inline).
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")  # no other writer between reading and writing
            try:
                result = await work(_SqliteTx(self._db))
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
            return result

    def _errors(self) -> tuple[type[BaseException], ...]:
        return (sqlite3.Error,)

    async def _lock_scope(self, tx: Tx, scope: str) -> None:
        pass  # BEGIN IMMEDIATE already holds the file's write lock

    async def claim(self, now: float, limit: int, owner: str, lease: float) -> list[OutboxItem]:
        if limit <= 0:
            return []

        async def work(tx: Tx) -> list[Any]:
            ids = [int(r["id"]) for r in (await tx.run(f"{DUE_SQL} LIMIT ?", (now, now, limit))).rows]
            if not ids:
                return []
            marks = ", ".join("?" for _ in ids)
            await tx.run(f"UPDATE outbox SET claimed_by = ?, claimed_until = ?, claim_generation = claim_generation + 1"
                         f" WHERE id IN ({marks})", (owner, now + lease, *ids))
            return (await tx.run(f"{ITEM_SQL} WHERE o.id IN ({marks}) ORDER BY o.id", ids)).rows

        return [OutboxItem.from_row(r) for r in await self._tx(work)]

    async def _vacuum(self) -> None:
        await asyncio.to_thread(self._vacuum_now)  # a big file's vacuum must not hold the event loop

    def _vacuum_now(self) -> None:
        with self._lock:
            if self._db.execute("PRAGMA auto_vacuum").fetchone()[0] == 0:
                self._db.execute("PRAGMA auto_vacuum=INCREMENTAL")
                self._db.execute("VACUUM")  # once, for a file made before retention existed
            self._db.execute("PRAGMA incremental_vacuum")
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    async def size_bytes(self) -> int:
        """The database file and its WAL."""
        total = 0
        for suffix in ("", "-wal"):
            try:
                total += Path(str(self.path) + suffix).stat().st_size
            except OSError:
                pass
        return total


def _private_file(path: Path) -> None:
    """The file holds every customer message and the accounts' webhook secrets: owner-only (0600; a directory the
    gateway makes is 0700, one it is given keeps its mode). The WAL and shared-memory files SQLite adds take the
    file's mode."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    for suffix in ("", "-wal", "-shm"):
        try:
            Path(str(path) + suffix).chmod(0o600)
        except FileNotFoundError:
            pass
