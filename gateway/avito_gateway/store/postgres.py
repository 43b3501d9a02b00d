"""The store on PostgreSQL (``DATABASE_URL=postgresql://...``): the same behaviour as the SQLite file, shared by
any number of replicas.

Tables live in their own schema (``avito_gateway``), so the gateway can share a database with the CRM.
Outbox items are claimed with ``FOR UPDATE SKIP LOCKED``: two replicas asking at once get different chats,
never the same item; rate-limit decisions for one account are serialised with a transaction-scoped
advisory lock. Queries are asynchronous (the event loop serves other requests while the server works), one
connection per event loop, one statement at a time on it; a connection the server dropped is replaced on the
next call (the failed call is a :class:`~avito_gateway.errors.StorageError`, as on a full disk).

Every wait on the server is bounded by ``DATABASE_TIMEOUT``: the server cancels a statement or a lock wait
after it (``statement_timeout``, ``lock_timeout``), and the gateway itself gives up one second later on a
server that does not answer at all (stopped, paused, unreachable): that call is a
:class:`~avito_gateway.errors.DatabaseTimeoutError` and its connection is abandoned for a fresh one.
"""

from __future__ import annotations

import asyncio
import json
import weakref
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar, cast

import psycopg
from psycopg.rows import dict_row

from avito_gateway.errors import DatabaseTimeoutError, DatabaseUnreachableError
from avito_gateway.store.base import Store
from avito_gateway.store.engine import Done, Tx
from avito_gateway.store.outbox import DUE_SQL
from avito_gateway.store.records import BEHIND_HEAD, OutboxItem
from avito_gateway.store.schema import LATER_COLUMNS, SCHEMA_NAME, add_column_sql, schema_sql

__all__ = ["PostgresStore", "SCHEMA_NAME"]

T = TypeVar("T")
Connection = psycopg.AsyncConnection[dict[str, Any]]
#: Any constant: replicas starting together create the tables one after another.
_SCHEMA_LOCK = 0x61766974
#: How much longer than the server's own timeouts the gateway waits for an answer before it gives up.
CLIENT_MARGIN = 1.0


def _pg(sql: str) -> str:
    """The portable SQL's ``?`` placeholders in psycopg's style (no statement here holds a literal ``?`` or ``%``)."""
    return sql.replace("?", "%s")


def _params(params: Sequence[Any]) -> tuple[Any, ...]:
    """PostgreSQL text cannot hold NUL: a hostile body, a sent text or an error message carrying one is stored with
    U+FFFD in its place (SQLite keeps it), instead of failing the write and, for a webhook, asking Avito to
    deliver the same poison again and again."""
    return tuple(p.replace("\x00", "\ufffd") if isinstance(p, str) and "\x00" in p else p for p in params)


class _PgTx:
    def __init__(self, db: Connection) -> None:
        self.db = db

    async def run(self, sql: str, params: Sequence[Any] = ()) -> Done:
        cursor = await self.db.execute(_pg(sql), _params(params))
        return Done((await cursor.fetchall()) if cursor.description else [], cursor.rowcount)


class _Session:
    """One event loop's connection (an asyncio connection belongs to its loop) and the one task that runs the
    store's calls on it, one at a time: a caller waits for its own call's answer (bounded), never on the
    connection, so giving up on a stalled server costs it nothing and leaves the connection to its worker."""

    def __init__(self, connect: Callable[[], Awaitable[Connection]]) -> None:
        self._connect = connect
        self.db: Connection | None = None
        self.calls: deque[tuple[Callable[[Connection], Awaitable[Any]], asyncio.Future[Any]]] = deque()
        self._more = asyncio.Event()
        self.worker: asyncio.Task[None] | None = None

    def call(self, work: Callable[[Connection], Awaitable[Any]], answer: asyncio.Future[Any] | None = None
             ) -> asyncio.Future[Any]:
        """Queue ``work``; its answer comes in the returned future."""
        answer = answer if answer is not None else asyncio.get_running_loop().create_future()
        self.calls.append((work, answer))
        self._more.set()
        if self.worker is None:
            self.worker = asyncio.get_running_loop().create_task(self._serve(), name="gateway-postgres")
        return answer

    async def _serve(self) -> None:
        while True:
            if not self.calls:
                self._more.clear()
                await self._more.wait()
                continue
            work, answer = self.calls.popleft()
            if answer.done():
                continue  # its caller gave up before it started
            try:
                if self.db is None or self.db.closed or self.db.broken:
                    if self.db is not None:
                        await self.db.close()
                    self.db = await self._connect()
                result = await work(self.db)
            except asyncio.CancelledError:
                if not answer.done():
                    answer.cancel()
                raise
            except Exception as exc:  # whatever the call raised is its caller's to handle; the worker goes on
                if not answer.done():
                    answer.set_exception(exc)
            else:
                if not answer.done():
                    answer.set_result(result)

    def end(self) -> None:
        """Stop serving (the call under way is cancelled: psycopg asks the server to cancel it) and close the
        connection once the worker is done."""
        if self.worker is None:
            return

        def closed(_: asyncio.Task[None]) -> None:
            if self.db is not None and not self.db.closed:
                self.db.pgconn.finish()

        self.worker.add_done_callback(closed)
        self.worker.cancel()


class PostgresStore(Store):
    shared = True
    engine = "postgres"

    def __init__(self, url: str, *, connect_timeout: float = 10.0, timeout: float = 5.0) -> None:
        """Checks the server and creates (or completes) the tables before returning; raises
        :class:`DatabaseUnreachableError` naming the problem. ``timeout``: DATABASE_TIMEOUT."""
        super().__init__()
        self.url = url
        self.timeout = timeout
        self._connect_timeout = max(1, int(connect_timeout))
        ms = max(1, int(timeout * 1000))
        self._options = (f"-c search_path={SCHEMA_NAME} -c statement_timeout={ms} -c lock_timeout={ms}"
                         f" -c idle_in_transaction_session_timeout={ms * 2}")
        self._sessions: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Session] = weakref.WeakKeyDictionary()
        self._reaping: set[asyncio.Future[None]] = set()
        try:
            with psycopg.connect(url, autocommit=True, connect_timeout=self._connect_timeout,
                                 options=f"-c search_path={SCHEMA_NAME}", application_name="avito-gateway") as db:
                db.execute("SELECT pg_advisory_lock(%s)", (_SCHEMA_LOCK,))
                try:
                    db.execute(schema_sql("postgres"))
                    for table, column, kind in LATER_COLUMNS:
                        db.execute(add_column_sql("postgres", table, column, kind))
                finally:
                    db.execute("SELECT pg_advisory_unlock(%s)", (_SCHEMA_LOCK,))
        except psycopg.Error as exc:
            raise DatabaseUnreachableError(f"cannot use DATABASE_URL: {str(exc).strip()}") from None

    def _session(self) -> _Session:
        loop = asyncio.get_running_loop()
        session = self._sessions.get(loop)
        if session is None:
            session = self._sessions[loop] = _Session(self._connect)
        return session

    async def _connect(self) -> Connection:
        return await psycopg.AsyncConnection.connect(
            self.url, autocommit=True, row_factory=dict_row, connect_timeout=self._connect_timeout,
            options=self._options, application_name="avito-gateway")

    async def _bounded(self, work: Callable[[Connection], Awaitable[T]], *, reap: bool = True) -> T:
        """``work`` on this loop's connection, waiting at most DATABASE_TIMEOUT + 1 s in all (the queue for the
        connection included). On a server that does not answer, the session is abandoned: the calls still
        queued move to a fresh one, the old connection is closed once its call ends, and (``reap``) its server
        process is terminated from the fresh one, so a statement stuck in a paused backend never runs when it
        continues (a claim nobody here holds any more would sit out its lease)."""
        session = self._session()
        answer = session.call(work)
        try:
            async with asyncio.timeout(self.timeout + CLIENT_MARGIN):
                return cast(T, await answer)
        except TimeoutError:
            self._abandon(session, reap)
            raise DatabaseTimeoutError(f"the database did not answer within {self.timeout + CLIENT_MARGIN:g} s") from None

    def _abandon(self, session: _Session, reap: bool) -> None:
        loop = asyncio.get_running_loop()
        if self._sessions.get(loop) is not session:
            return  # another caller already gave this session up
        fresh = self._sessions[loop] = _Session(self._connect)
        while session.calls:  # not started: they run on the fresh connection, their callers never notice
            work, answer = session.calls.popleft()
            if not answer.done():
                fresh.call(work, answer)
        if reap and session.db is not None and not session.db.closed:
            reaping = asyncio.ensure_future(self._reap(session.db.info.backend_pid))
            self._reaping.add(reaping)  # held until done (the loop keeps only weak references to tasks)
            reaping.add_done_callback(self._reaping.discard)
        session.end()

    async def _reap(self, backend: int) -> None:
        """End an abandoned connection's server process (a paused one ends as soon as it continues)."""
        try:
            await self._bounded(lambda db: _PgTx(db).run("SELECT pg_terminate_backend(?)", (backend,)), reap=False)
        except (DatabaseTimeoutError, psycopg.Error):
            pass  # the server is out: the old connection ends with it

    async def close(self) -> None:
        """Every connection this store opened (another event loop's is closed at once, without waiting)."""
        loop = asyncio.get_running_loop()
        for owner, session in list(self._sessions.items()):
            if owner is loop and session.worker is not None:
                session.worker.cancel()
                try:
                    await session.worker
                except asyncio.CancelledError:
                    pass
            if session.db is None or session.db.closed:
                continue
            if owner is loop:
                await session.db.close()
            else:
                session.db.pgconn.finish()
        self._sessions.clear()

    async def _statement(self, sql: str, params: Sequence[Any]) -> Done:
        return await self._bounded(lambda db: _PgTx(db).run(sql, params))  # autocommit: one round trip

    async def _transaction(self, work: Callable[[Tx], Awaitable[T]]) -> T:
        async def in_transaction(db: Connection) -> T:
            async with db.transaction():
                return await work(_PgTx(db))

        return await self._bounded(in_transaction)

    def _errors(self) -> tuple[type[BaseException], ...]:
        return (psycopg.Error,)

    def _describe(self, exc: BaseException) -> str:
        if isinstance(exc, psycopg.OperationalError) and getattr(exc, "sqlstate", None) is None:
            return "the database cannot be reached"  # libpq's words name the host and port: they stay in the log
        return super()._describe(exc)

    async def _lock_scope(self, tx: Tx, scope: str) -> None:
        await tx.run("SELECT pg_advisory_xact_lock(hashtext(?))", (scope,))

    # One statement each for the two hot paths (every webhook, every forward): no BEGIN/COMMIT round trips.
    async def record_inbound(
        self, *, account: int, message_id: str, chat_id: str, author_id: int | None, kind: str, raw: dict[str, Any],
        now: float, forward: bool,
    ) -> bool:
        done = await self._write(
            "WITH ins AS (INSERT INTO inbound (account, message_id, chat_id, author_id, kind, received_at, raw)"
            " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (account, message_id) DO NOTHING RETURNING id),"
            " box AS (INSERT INTO outbox (inbound_id, chat_id, next_attempt_at, created_at) SELECT id, ?,"
            " CASE WHEN EXISTS (SELECT 1 FROM outbox WHERE chat_id = ? AND status = 'pending') THEN ? ELSE ? END, ?"
            " FROM ins WHERE ? RETURNING id)"
            " SELECT (SELECT COUNT(*) FROM ins) AS stored, (SELECT COUNT(*) FROM box) AS queued",
            (account, message_id, chat_id, author_id, kind, now, json.dumps(raw, ensure_ascii=False),
             chat_id, chat_id, BEHIND_HEAD, now, now, forward))
        return bool(done.rows[0]["stored"])

    async def claim(self, now: float, limit: int, owner: str, lease: float) -> list[OutboxItem]:
        if limit <= 0:
            return []
        done = await self._write(
            f"WITH pick AS ({DUE_SQL} LIMIT ? FOR UPDATE OF o SKIP LOCKED),"
            " claimed AS (UPDATE outbox SET claimed_by = ?, claimed_until = ?,"
            " claim_generation = outbox.claim_generation + 1 FROM pick WHERE outbox.id = pick.id RETURNING outbox.*)"
            " SELECT c.*, i.raw, i.account FROM claimed c JOIN inbound i ON i.id = c.inbound_id ORDER BY c.id",
            (now, now, limit, owner, now + lease))
        return [OutboxItem.from_row(r) for r in done.rows]

    async def delivered(self, item_id: int, generation: int, now: float) -> bool:
        done = await self._write(
            "WITH done AS (UPDATE outbox SET status = 'delivered', delivered_at = ?, attempts = attempts + 1,"
            " last_error = NULL, payload = NULL, claimed_by = NULL, claimed_until = NULL"
            " WHERE id = ? AND claim_generation = ? AND status = 'pending' RETURNING chat_id),"
            # the statement's snapshot still shows this item pending: the next one is the oldest other
            " next AS (UPDATE outbox SET next_attempt_at = ? WHERE id = (SELECT MIN(p.id) FROM outbox p, done"
            " WHERE p.chat_id = done.chat_id AND p.status = 'pending' AND p.id <> ?) AND next_attempt_at >= ?)"
            " SELECT COUNT(*) AS n FROM done", (now, item_id, generation, now, item_id, BEHIND_HEAD))
        return bool(done.rows[0]["n"])

    async def _vacuum(self) -> None:
        pass  # the server's autovacuum does it

    async def size_bytes(self) -> int:
        rows = await self._rows("SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0) AS n FROM pg_class c"
                                " JOIN pg_namespace s ON s.oid = c.relnamespace WHERE s.nspname = ? AND c.relkind = 'r'",
                                (SCHEMA_NAME,))
        return int(rows[0]["n"])

    async def reset(self) -> None:
        """Drop every table (tests; ``avito-gateway`` never calls it)."""
        async def drop(db: Connection) -> None:
            await db.execute(f"DROP SCHEMA IF EXISTS {SCHEMA_NAME} CASCADE")
            await db.execute(schema_sql("postgres"))

        await self._bounded(drop)
