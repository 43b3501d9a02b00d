"""What every store engine provides, and the bookkeeping of failed writes both engines share.

An engine (:class:`~avito_gateway.store.sqlite.SqliteStore`,
:class:`~avito_gateway.store.postgres.PostgresStore`) runs one statement on its own or a transaction of
several; the SQL itself is written once, in the dialect both understand (``?`` placeholders, ``ON CONFLICT``,
``RETURNING``), by the table modules beside this one. Every failed statement is a
:class:`~avito_gateway.errors.StorageError`; a failed write is remembered until a write succeeds, so
``/health`` tells the truth on a full disk or a lost server.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from avito_gateway.errors import StorageError
from avito_gateway.logsafe import safe

__all__ = ["Done", "StoreEngine", "Tx", "account_filter"]

T = TypeVar("T")
log = logging.getLogger("avito_gateway.store")


@dataclass(frozen=True)
class Done:
    """One statement's rows (mappings: ``row["column"]``) and how many rows it changed."""

    rows: list[Any]
    count: int


class Tx(Protocol):
    """An open transaction: statements run in it commit together."""

    async def run(self, sql: str, params: Sequence[Any] = ()) -> Done: ...


def account_filter(column: str, accounts: Sequence[int] | None, *, unattributed: bool = False) -> tuple[str, tuple[Any, ...]]:
    """``AND column IN (...)`` for an API key's accounts (None: every account, the single-account gateway)."""
    if accounts is None:
        return "", ()
    marks = ", ".join("?" for _ in accounts) or "NULL"
    either = f" OR {column} IS NULL" if unattributed else ""
    return f" AND ({column} IN ({marks}){either})", tuple(accounts)


class StoreEngine(ABC):
    #: Several processes may share it (claims and rate-limit slots then matter between them).
    shared: bool = False
    #: The engine's name, for /health and the logs.
    engine: str = "?"

    def __init__(self) -> None:
        #: The last write that failed (cleared by the next one that succeeds).
        self.write_error: str | None = None

    # --- what an engine implements -------------------------------------------------------------------------
    @abstractmethod
    async def _statement(self, sql: str, params: Sequence[Any]) -> Done:
        """One statement, atomic on its own (no BEGIN/COMMIT round trips)."""

    @abstractmethod
    async def _transaction(self, work: Callable[[Tx], Awaitable[T]]) -> T:
        """Run ``work`` in one write transaction (committed if it returns, rolled back if it raises). ``work``
        awaits nothing but its statements."""

    @abstractmethod
    def _errors(self) -> tuple[type[BaseException], ...]:
        """The engine's own exception classes (each becomes a StorageError)."""

    def _describe(self, exc: BaseException) -> str:
        """What went wrong, fit for anyone to read (/health is public): never a host, port or password."""
        return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__

    @abstractmethod
    async def _lock_scope(self, tx: Tx, scope: str) -> None:
        """Inside a transaction: serialise rate-limit decisions for ``scope`` between processes."""

    @abstractmethod
    async def _vacuum(self) -> None:
        """Give freed space back (engines that need it)."""

    @abstractmethod
    async def size_bytes(self) -> int:
        """What the gateway's tables take on disk."""

    @abstractmethod
    async def close(self) -> None: ...

    # --- shared ---------------------------------------------------------------------------------------------
    def _failures(self) -> tuple[type[BaseException], ...]:
        return (StorageError, *self._errors())

    def _refused(self, exc: BaseException, what: str) -> StorageError:
        """The StorageError to raise for ``exc`` (its message safe to show); the full story goes to the log."""
        if isinstance(exc, StorageError):
            return exc
        log.warning("storage %s failed: %s", what, safe(repr(exc), 500))
        return StorageError(f"storage {what} failed: {self._describe(exc)}")

    def _write_failed(self, exc: BaseException) -> StorageError:
        refused = self._refused(exc, "write")
        self.write_error = f"{type(exc).__name__}: {refused.message}"
        return refused

    async def _tx(self, work: Callable[[Tx], Awaitable[T]], *, probe: bool = False) -> T:
        """A write transaction. A failed write is remembered in :attr:`write_error` until a real (non-probe)
        write succeeds: a probe can fit in pages that are already there while real writes need new ones."""
        try:
            result = await self._transaction(work)
        except self._failures() as exc:
            raise self._write_failed(exc) from None
        if not probe:
            self.write_error = None
        return result

    async def _write(self, sql: str, params: Sequence[Any] = (), *, probe: bool = False) -> Done:
        try:
            done = await self._statement(sql, params)
        except self._failures() as exc:
            raise self._write_failed(exc) from None
        if not probe:
            self.write_error = None
        return done

    async def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        try:
            return (await self._statement(sql, params)).rows
        except self._failures() as exc:
            raise self._refused(exc, "read") from None

    async def writable(self, now: float) -> bool:
        """A committed probe write succeeds and no real write has failed since the last one that succeeded."""
        try:
            await self._write("INSERT INTO health_probe (k, v, pad) VALUES ('health', ?, ?)"
                              " ON CONFLICT (k) DO UPDATE SET v = excluded.v, pad = excluded.pad",
                              (now, f"{now}-{'x' * 4096}"), probe=True)
        except StorageError:
            return False
        return self.write_error is None

    # --- meta: small values every replica shares ----------------------------------------------------------
    async def get_meta(self, key: str) -> str | None:
        rows = await self._rows("SELECT v FROM meta WHERE k = ?", (key,))
        return None if not rows else str(rows[0]["v"])

    async def set_meta(self, key: str, value: str) -> None:
        await self._write("INSERT INTO meta (k, v) VALUES (?, ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v",
                          (key, value))

    async def meta_once(self, key: str, value: str) -> str:
        """Set ``key`` unless some process already did; returns the value that won (one for every replica)."""
        async def work(tx: Tx) -> str:
            await tx.run("INSERT INTO meta (k, v) VALUES (?, ?) ON CONFLICT (k) DO NOTHING", (key, value))
            return str((await tx.run("SELECT v FROM meta WHERE k = ?", (key,))).rows[0]["v"])

        return await self._tx(work)
