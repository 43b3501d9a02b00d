"""The forwarder: normalizes stored customer messages and delivers them to n8n.

A background task claims due outbox items (the oldest pending one per chat,
so each chat keeps its order, also across replicas; a claim is a lease of
``OUTBOX_LEASE_SECONDS``, so a killed replica's items return to the others)
and forwards up to ``OUTBOX_CONCURRENCY`` chats at once: a slow or failing
chat never holds the others back. Each item goes to its account's n8n URL,
with its account's Avito client for the enrichment reads. Each item is
normalized (the chat read that fills in the customer's name has a small time
budget and a cache; for voice, a fresh voice link from Avito), POSTed to
``N8N_WEBHOOK_URL`` and marked delivered. Any failure of one item, whatever
raised it, is an attempt of that item only: it backs off exponentially on the
clock and after ``OUTBOX_MAX_ATTEMPTS`` becomes a dead letter the API can
replay. When the database refuses a write the forwarder backs off as a whole;
an item n8n accepted but that could not be marked delivered is never
re-posted by this process (its mark is held until the store takes it).

Claims are fenced leases (:mod:`avito_gateway.leases`): renewed while the delivery
runs (a slow voice-link read no longer lets another replica forward the same
message), checked before the post to n8n (which must end before the lease could
run out), and marks are taken only with the claim's generation. A replica that
lost a claim (it was paused past its lease) stops that delivery and never posts
it: the replica that took the chat's head over forwards it, in the chat's order.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from typing import Any

import httpx

from avito_gateway.clock import Clock
from avito_gateway.enrich import Enricher, ForwardAccount, NotForwardable
from avito_gateway.errors import GatewayError, StorageError
from avito_gateway.held_writes import HeldWrites
from avito_gateway.http import HttpFailure, http_client
from avito_gateway.leases import ClaimLost, Lease
from avito_gateway.logsafe import safe
from avito_gateway.settings import GatewaySettings
from avito_gateway.store import OutboxItem, Store

__all__ = ["Forwarder"]

log = logging.getLogger("avito_gateway.outbox")
STORE_BACKOFF_MIN, STORE_BACKOFF_MAX = 1.0, 30.0
#: How often (seconds, the gateway's clock) chat heads a concurrent hand-over left waiting are made due.
HEAD_REPAIR_EVERY = 10.0
#: Woken again within this many (real) seconds of a pass, the loop waits for the rest of it.
COALESCE = 0.02


class Forwarder:
    def __init__(
        self,
        settings: GatewaySettings,
        store: Store,
        clock: Clock,
        route: Callable[[int], ForwardAccount | None],
        *,
        owner: str,
        held: HeldWrites,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.settings, self.store, self.clock, self._route, self.held = settings, store, clock, route, held
        #: This process's name on its claims.
        self.owner = owner
        self.http = http_client(timeout=settings.n8n_timeout, max_connections=settings.outbox_concurrency,
                                transport=transport)
        self.enricher = Enricher(settings, clock)
        self.wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._in_flight: dict[str, asyncio.Task[None]] = {}  # chat id -> its delivery under way
        self._leases: dict[int, tuple[Lease, asyncio.Task[None]]] = {}  # item id -> its claim, its delivery
        self._repair_at = 0.0
        self._store_backoff = 0.0
        self._store_resume_at = 0.0
        #: Failed forwards in a row (any item); /health reads it.
        self.failures_in_a_row = 0
        self.last_error: str | None = None
        self._stopping = False

    # --- lifecycle ---------------------------------------------------------
    def start(self) -> None:
        self._stopping = False
        self._task = asyncio.create_task(self._loop(), name="gateway-outbox")

    async def stop(self) -> None:
        self._stopping = True  # the loop ends even if a cancellation is lost (below)
        self.wake.set()
        tasks = [t for t in (self._task, *self._in_flight.values()) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
        await self.http.aclose()
        try:
            await self.store.release_claims(self.owner)  # a clean stop hands its unfinished items over at once
        except StorageError:
            pass

    async def _loop(self) -> None:
        # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a cancel that arrives just as the wake-up
        # does (the loop ran on, and a SIGTERM never ended the process)
        loop = asyncio.get_running_loop()
        while not self._stopping:
            self.wake.clear()
            passed_at = loop.time()
            try:
                await self._dispatch()
            except Exception as exc:  # whatever it was, never let one pass end forwarding for good
                log.warning("outbox pass failed: %s", safe(repr(exc)))
            try:
                async with asyncio.timeout(self.settings.outbox_poll_interval):
                    await self.wake.wait()
            except TimeoutError:
                continue
            # a burst of webhooks: one claim per COALESCE seconds takes them together (one at once is a claim each)
            await asyncio.sleep(max(0.0, passed_at + COALESCE - loop.time()))

    # --- work --------------------------------------------------------------
    async def run_once(self) -> int:
        """Deliver what is due now (after what is already under way) and wait for it; returns how many
        items were attempted."""
        if self._in_flight:
            await asyncio.gather(*self._in_flight.values(), return_exceptions=True)
        tasks = await self._dispatch()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        return len(tasks)

    async def _dispatch(self) -> list[asyncio.Task[None]]:
        """Start a delivery for each chat whose head is due and which has none under way (bounded)."""
        now = self.clock.now()
        await self.held.flush()
        await self._renew(now)
        free = self.settings.outbox_concurrency - len(self._in_flight)
        if free <= 0 or now < self._store_resume_at:
            return []
        try:
            if now >= self._repair_at:
                self._repair_at = now + HEAD_REPAIR_EVERY
                await self.store.unstick_heads(now)
            due = await self.store.claim(now, free, self.owner, self.settings.outbox_lease_seconds)
        except StorageError as exc:
            self._store_failed(exc)
            return []
        started: list[asyncio.Task[None]] = []
        skipped: dict[int, int] = {}
        for item in due:
            if f"outbox:{item.id}" in self.held:  # n8n has it; only its mark is missing: marked now, never re-posted
                self.held.drop(f"outbox:{item.id}")
                await self._mark_delivered(item)
                continue
            if item.chat_id in self._in_flight:
                skipped[item.id] = item.generation  # its chat's previous item is still finishing here
                continue
            task = asyncio.create_task(self._deliver(item), name=f"outbox-{item.id}")
            self._leases[item.id] = (self._lease(item), task)
            self._in_flight[item.chat_id] = task
            task.add_done_callback(functools.partial(self._finished, item.chat_id, item.id))
            started.append(task)
        if skipped:
            try:
                await self.store.release_claims(self.owner, skipped)
            except StorageError as exc:
                self._store_failed(exc)
        return started

    def _lease(self, item: OutboxItem) -> Lease:
        async def renew(until: float) -> bool:
            return item.id in await self.store.renew_claims(self.owner, {item.id: item.generation}, until)

        seconds = self.settings.outbox_lease_seconds
        return Lease(item.generation, self.clock.now() + seconds, seconds, self.clock, renew)

    async def _renew(self, now: float) -> None:
        """Extend the claims of deliveries under way (one statement for all that are due); a delivery whose
        claim another replica took over is stopped."""
        due = {item_id: lease.generation for item_id, (lease, _) in self._leases.items() if lease.due()}
        if not due:
            return
        until = now + self.settings.outbox_lease_seconds
        try:
            kept = await self.store.renew_claims(self.owner, due, until)
        except StorageError as exc:
            self._store_failed(exc)  # not known: each delivery checks its claim before it posts
            return
        for item_id in due:
            found = self._leases.get(item_id)
            if found is None:
                continue
            lease, task = found
            lease.extended(until, item_id in kept)
            if lease.lost:
                log.warning("outbox item %d was taken over by another replica: its delivery here stops", item_id)
                task.cancel()

    def _finished(self, chat_id: str, item_id: int, _task: asyncio.Task[None]) -> None:
        self._in_flight.pop(chat_id, None)
        self._leases.pop(item_id, None)
        self.wake.set()

    def _backoff(self, attempts: int) -> float:
        return float(min(self.settings.outbox_retry_max, self.settings.outbox_retry_min * (2 ** min(attempts, 32))))

    def _store_failed(self, exc: StorageError) -> None:
        """The database refused: wait before touching it again (doubling, capped)."""
        self._store_backoff = min(STORE_BACKOFF_MAX, max(STORE_BACKOFF_MIN, self._store_backoff * 2))
        self._store_resume_at = self.clock.now() + self._store_backoff
        log.warning("outbox paused %.1f s: %s", self._store_backoff, safe(exc.message))

    def _account(self, item: OutboxItem) -> ForwardAccount:
        found = self._route(item.account)
        if found is None:
            raise NotForwardable(f"no account serves Avito user {item.account} any more (ACCOUNTS_FILE)")
        return found

    async def _deliver(self, item: OutboxItem) -> None:
        started = self.clock.now()
        payload: dict[str, Any] | None = None  # kept with a failed attempt: the next one need not build it again
        try:
            account = self._account(item)
            target = account.account.n8n_webhook_url
            if not target:
                raise NotForwardable("N8N_WEBHOOK_URL is not set" if account.account.is_default
                                     else f"account {account.account.name} has no n8n_webhook_url (nor N8N_WEBHOOK_URL)")
            payload = self.enricher.ready(item) or await self.enricher.payload(item, account)
            headers = {"Idempotency-Key": f"avito-{payload['meta']['external_message_id']}"}
            if account.account.tenant is not None:
                headers["X-Tenant"] = account.account.tenant
            lease, _ = self._leases[item.id]
            budget = await lease.ensure(self.settings.n8n_timeout)  # the claim outlasts the post
            response = await self.http.request("POST", target, json=payload, headers=headers, timeout=budget)
            if not 200 <= response.status_code < 300:
                raise NotForwardable(f"n8n answered {response.status_code}: {safe(response.text, 200)}")
        except asyncio.CancelledError:
            raise
        except ClaimLost:
            log.warning("outbox item %d: claim taken over by another replica before the post; not posted here", item.id)
            return
        except StorageError as exc:
            self._store_failed(exc)
            return
        except (NotForwardable, GatewayError) as exc:
            await self._failed(item, exc.message if isinstance(exc, GatewayError) else str(exc), payload)
            return
        except HttpFailure as exc:
            await self._failed(item, f"n8n unreachable: {exc.name}", payload)
            return
        except Exception as exc:  # whatever a message this code cannot handle raises: its own attempt only
            await self._failed(item, f"could not forward: {type(exc).__name__}: {safe(exc, 200)}", payload)
            return
        self.failures_in_a_row, self.last_error = 0, None
        await self._mark_delivered(item)
        log.info("forwarded message %s of chat %s after %d attempt(s) (%.3f s)",
                 safe(payload["meta"]["external_message_id"], 80), safe(item.chat_id, 80), item.attempts + 1,
                 self.clock.now() - started)

    async def _mark_delivered(self, item: OutboxItem) -> None:
        """n8n has it: marked with the claim's generation (False: another replica holds it now, and forwards it
        again; the same Idempotency-Key lets n8n see the repeat), or held until the store takes it."""
        now = self.clock.now()

        async def write() -> None:
            if not await self.store.delivered(item.id, item.generation, now):
                log.warning("outbox item %d reached n8n but was taken over by another replica meanwhile", item.id)

        try:
            await write()
            self._store_backoff = 0.0
        except StorageError as exc:
            self.held.hold(f"outbox:{item.id}", write)
            self._store_failed(exc)

    async def _failed(self, item: OutboxItem, error: str, payload: dict[str, Any] | None = None) -> None:
        self.failures_in_a_row += 1
        self.last_error = error
        attempts = item.attempts + 1
        dead = attempts >= self.settings.outbox_max_attempts
        try:
            if not await self.store.failed(item.id, item.generation, error,
                                           self.clock.now() + self._backoff(item.attempts), dead, payload):
                log.warning("outbox item %d failed here (%s) but was taken over by another replica meanwhile",
                            item.id, safe(error))
                return
        except StorageError as exc:
            self._store_failed(exc)
            return
        log.warning("outbox item %d attempt %d failed%s: %s", item.id, attempts, " (dead letter)" if dead else "",
                    safe(error))
