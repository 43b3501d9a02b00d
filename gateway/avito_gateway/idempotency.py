"""``Idempotency-Key``: the first request's answer is stored and returned for every repeat (n8n retries on
timeout), also a concurrent repeat, in this process or on another replica.

A key is claimed in the shared store as a fenced lease (:mod:`avito_gateway.leases`): renewed while its send
runs, checked before every post, taken over by another replica only once it ran out. Whoever takes over a key
its holder left unfinished reads the chat before posting. A post whose outcome stays unknown leaves the key
unfinished (never released), so a retry with it reads the chat first; an answer the store could not take is
held in memory, answered to repeats, and written when the store comes back. Keys are per account.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Awaitable, Callable
from typing import Any

from avito_gateway.accounts import Account
from avito_gateway.clock import Clock, sleep
from avito_gateway.errors import (
    AvitoApiError,
    GatewayError,
    IdempotencyInProgressError,
    IdempotencyKeyReusedError,
    InvalidRequestError,
    SendOutcomeUnknownError,
    StorageError,
)
from avito_gateway.held_writes import HeldWrites
from avito_gateway.leases import ClaimLost, Lease
from avito_gateway.sending import Posting
from avito_gateway.settings import GatewaySettings
from avito_gateway.store import KeyClaim, Store

__all__ = ["IdempotencyKeys", "KEY_POLL_MAX", "KEY_POLL_MIN", "LOOK_EVERY", "Result", "fingerprint"]

#: How often (seconds) a request polls for the answer to its key while another replica is sending it.
KEY_POLL_MIN, KEY_POLL_MAX = 0.01, 0.25
#: How often (real seconds) a held key looks whether its lease is due for renewal.
LOOK_EVERY = 0.5
#: An answer: HTTP status and body.
Result = tuple[int, dict[str, Any]]


def fingerprint(request: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(request, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


class IdempotencyKeys:
    """One account's keys."""

    def __init__(self, settings: GatewaySettings, store: Store, clock: Clock, account: Account,
                 held: HeldWrites) -> None:
        self.settings, self.store, self.clock, self.account, self.held = settings, store, clock, account, held
        self._locks: dict[str, asyncio.Lock] = {}
        self._users: dict[str, int] = {}
        #: Answers the store has not taken yet (key -> fingerprint, status, body).
        self._answers: dict[str, tuple[str, int, dict[str, Any]]] = {}

    async def run(self, key: str | None, request: dict[str, Any],
                  work: Callable[[Posting], Awaitable[Result]]) -> Result:
        """Run ``work`` once per key; repeats (also concurrent ones) get the stored answer."""
        if key is None:
            return await work(Posting())
        if not key.strip() or len(key) > 200:
            raise InvalidRequestError("Idempotency-Key must be 1 to 200 characters",
                                      details={"fields": {"Idempotency-Key": "1 to 200 characters"}})
        if not self.account.is_default:  # one account's key never finds another's answer
            key = f"{self.account.name}\x1f{key}"
        lock = self._locks.setdefault(key, asyncio.Lock())
        self._users[key] = self._users.get(key, 0) + 1
        try:
            async with lock:
                return await self._once(key, fingerprint(request), work)
        finally:
            self._users[key] -= 1
            if not self._users[key]:  # nobody holds or waits for it: the map stays as small as the traffic
                del self._users[key], self._locks[key]

    async def _answered(self, key: str, fp: str) -> Result | None:
        """The key's answer, held here or stored (422 when the key was used for another request)."""
        held = self._answers.get(key)
        stored = await self.store.idempotency(key) if held is None else None
        if held is not None:
            found_fp, status, body = held
        elif stored is not None:
            found_fp, status, body = stored.fingerprint, stored.status, stored.response  # type: ignore[assignment]
        else:
            return None
        if found_fp != fp:
            raise IdempotencyKeyReusedError("Idempotency-Key was already used for a different request")
        if status is None or body is None:
            return None
        return status, {**body, "idempotent_replay": True}

    async def _once(self, key: str, fp: str, work: Callable[[Posting], Awaitable[Result]]) -> Result:
        lease = self.settings.idempotency_lease_seconds
        give_up = self.clock.monotonic() + lease + self.settings.connection_timeout
        poll = KEY_POLL_MIN
        while True:
            answered = await self._answered(key, fp)
            if answered is not None:
                return answered
            now = self.clock.now()
            claim = await self.store.claim_idempotency(key, fp, now, now + lease)
            if claim is not None:
                try:
                    return await self._run_claimed(key, fp, claim, work)
                except ClaimLost:
                    pass  # another replica took the key over before this one posted: its answer will be ours
            # another replica is sending this very request: its answer will be ours
            if self.clock.monotonic() >= give_up:
                raise IdempotencyInProgressError("a request with this Idempotency-Key is still in progress elsewhere",
                                                 retry_after=1.0)
            await sleep(self.clock, poll)
            poll = min(KEY_POLL_MAX, poll * 2)

    async def _run_claimed(self, key: str, fp: str, claim: KeyClaim,
                           work: Callable[[Posting], Awaitable[Result]]) -> Result:
        generation = claim.generation

        async def renew(until: float) -> bool:
            return await self.store.renew_idempotency(key, generation, until)

        lease = Lease(generation, self.clock.now() + self.settings.idempotency_lease_seconds,
                      self.settings.idempotency_lease_seconds, self.clock, renew)
        keeper = asyncio.create_task(_keep(lease), name="idempotency-lease")

        async def guard() -> float:
            return await lease.ensure(self.settings.connection_timeout)

        try:
            status, body = await work(Posting(guard=guard, check_first=claim.taken_over))
        except (SendOutcomeUnknownError, AvitoApiError) as exc:
            if isinstance(exc, AvitoApiError) and not (exc.may_have_posted and exc.retryable):
                return await self._failed(key, fp, generation, exc)
            # it may yet land late: the key lapses, and its next holder reads the chat before posting
            try:
                await self.store.lapse_idempotency(key, generation, self.clock.now())
            except StorageError:
                pass  # the lease runs out by itself: the key stays unfinished either way
            raise
        except GatewayError as exc:
            return await self._failed(key, fp, generation, exc)
        finally:
            keeper.cancel()
        await self._finish(key, fp, generation, status, body)
        return status, body

    async def _failed(self, key: str, fp: str, generation: int, exc: GatewayError) -> Result:
        """A send that posted nothing: a retryable failure frees the key, a final one is its answer."""
        if exc.retryable:
            try:
                await self.store.release_idempotency(key, generation)
            except StorageError:
                pass  # the claim lapses; whoever runs the key next reads the chat first, finds nothing, posts
        else:
            await self._finish(key, fp, generation, exc.status, exc.body())
        raise exc

    async def _finish(self, key: str, fp: str, generation: int, status: int, body: dict[str, Any]) -> None:
        """Store the answer (fenced: a holder that lost the key changes nothing); held while the store refuses."""
        async def write() -> None:
            await self.store.finish_idempotency(key, generation, status, body)
            self._answers.pop(key, None)

        try:
            await write()
        except StorageError:
            self._answers[key] = (fp, status, body)
            self.held.hold(f"key:{key}", write)


async def _keep(lease: Lease) -> None:
    """Renew ``lease`` while its work runs (stops when it is lost)."""
    while not lease.lost:
        await asyncio.sleep(min(LOOK_EVERY, lease.seconds / 4))
        if lease.due():
            try:
                await lease.keep()
            except ClaimLost:
                return
            except StorageError:
                continue  # not known: the lease stands as it was; a post needs Lease.ensure to succeed
