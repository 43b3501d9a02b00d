"""``Idempotency-Key``: the first request's answer is stored and returned for every repeat (n8n retries on
timeout), also a concurrent repeat, in this process or on another replica.

A key is claimed in the shared store with a lease before its request runs: a replica that died mid-send leaves
the key to the next one once ``IDEMPOTENCY_LEASE_SECONDS`` have passed. Keys are per account.
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
    GatewayError,
    IdempotencyInProgressError,
    IdempotencyKeyReusedError,
    InvalidRequestError,
)
from avito_gateway.settings import GatewaySettings
from avito_gateway.store import Store

__all__ = ["IdempotencyKeys", "Result", "KEY_POLL_MIN", "KEY_POLL_MAX"]

#: How often (seconds) a request polls for the answer to its key while another replica is sending it.
KEY_POLL_MIN, KEY_POLL_MAX = 0.01, 0.25
#: An answer: HTTP status and body.
Result = tuple[int, dict[str, Any]]


def fingerprint(request: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(request, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


class IdempotencyKeys:
    """One account's keys."""

    def __init__(self, settings: GatewaySettings, store: Store, clock: Clock, account: Account) -> None:
        self.settings, self.store, self.clock, self.account = settings, store, clock, account
        self._locks: dict[str, asyncio.Lock] = {}
        self._users: dict[str, int] = {}

    async def run(self, key: str | None, request: dict[str, Any], work: Callable[[], Awaitable[Result]]) -> Result:
        """Run ``work`` once per key; repeats (also concurrent ones) get the stored answer."""
        if key is None:
            return await work()
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

    async def _once(self, key: str, fp: str, work: Callable[[], Awaitable[Result]]) -> Result:
        lease = self.settings.idempotency_lease_seconds
        give_up = self.clock.monotonic() + lease + self.settings.connection_timeout
        poll = KEY_POLL_MIN
        while True:
            stored = await self.store.idempotency(key)
            if stored is not None:
                if stored.fingerprint != fp:
                    raise IdempotencyKeyReusedError("Idempotency-Key was already used for a different request")
                if stored.status is not None and stored.response is not None:
                    return stored.status, {**stored.response, "idempotent_replay": True}
            now = self.clock.now()
            if await self.store.claim_idempotency(key, fp, now, now + lease):
                break
            # another replica is sending this very request: its answer will be ours
            if self.clock.monotonic() >= give_up:
                raise IdempotencyInProgressError("a request with this Idempotency-Key is still in progress elsewhere",
                                                 retry_after=1.0)
            await sleep(self.clock, poll)
            poll = min(KEY_POLL_MAX, poll * 2)
        try:
            status, body = await work()
        except GatewayError as exc:
            if exc.retryable:
                await self.store.release_idempotency(key)  # nothing was posted: a retry may try again
            else:
                await self.store.finish_idempotency(key, exc.status, exc.body())
            raise
        await self.store.finish_idempotency(key, status, body)
        return status, body
