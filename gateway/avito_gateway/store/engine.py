"""What every store engine provides, and the bookkeeping of failed writes both engines share.

An engine (:class:`~avito_gateway.store.sqlite.SqliteStore`,
:class:`~avito_gateway.store.postgres.PostgresStore`) runs one statement on its own or a transaction of
several; the SQL itself is written once, in the dialect both understand (``?`` placeholders, ``ON CONFLICT``,
``RETURNING``), by the table modules beside this one. Every failed statement is a
:class:`~avito_gateway.errors.StorageError`; a failed write is remembered until a write succeeds, so
``/health`` tells the truth on a full disk or a lost server.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from avito_gateway.errors import StorageError

__all__ = ["Done", "StoreEngine", "Tx"]

T = TypeVar("T")


@dataclass(frozen=True)
class Done:
    """One statement's rows (mappings: ``row["column"]``) and how many rows it changed."""

    rows: list[Any]
    count: int


class Tx(Protocol):
    """An open transaction: statements run in it commit together."""

    async def run(self, sql: str, params: Sequence[Any] = ()) -> Done: ...


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
        if isinstance(exc, StorageError):
            return exc
        return StorageError(f"storage {what} failed: {exc}".strip())

    async def _tx(self, work: Callable[[Tx], Awaitable[T]], *, probe: bool = False) -> T:
        """A write transaction. A failed write is remembered in :attr:`write_error` until a real (non-probe)
        write succeeds: a probe can fit in pages that are already there while real writes need new ones."""
        try:
            result = await self._transaction(work)
        except self._failures() as exc:
            self.write_error = f"{type(exc).__name__}: {exc}".strip()
            raise self._refused(exc, "write") from None
        if not probe:
            self.write_error = None
        return result

    async def _write(self, sql: str, params: Sequence[Any] = (), *, probe: bool = False) -> Done:
        try:
            done = await self._statement(sql, params)
        except self._failures() as exc:
            self.write_error = f"{type(exc).__name__}: {exc}".strip()
            raise self._refused(exc, "write") from None
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
