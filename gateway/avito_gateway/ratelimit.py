"""The gateway's own rate limit per Avito account: a sliding-window log on the injectable clock.

Exact under steady traffic: a request is allowed when fewer than ``limit``
requests were allowed in the last ``window`` seconds, whatever the rhythm.
One process keeps the log in memory (:class:`SlidingWindowLimiter`); replicas
sharing a database keep it there (:class:`SharedLimiter`), so the limit holds
for the deployment, not per process.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Protocol

from avito_gateway.clock import Clock
from avito_gateway.errors import RateLimitedError, StorageError
from avito_gateway.store import Store

__all__ = ["Limiter", "SlidingWindowLimiter", "SharedLimiter", "take_slot"]


class Limiter(Protocol):
    limit: int
    window: float

    async def take(self, n: int = 1) -> float | None:
        """Take ``n`` slots; None when allowed, else the seconds until they would be free."""
        ...

    async def remaining(self) -> int: ...


async def take_slot(limiter: Limiter, n: int = 1) -> None:
    """Take ``n`` slots of the account's limit, or refuse with 429 and when to retry."""
    wait = await limiter.take(n)
    if wait is not None:
        raise RateLimitedError("Rate limit exceeded, try again later", retry_after=wait)


class SlidingWindowLimiter:
    def __init__(self, limit: int, window: float, clock: Clock) -> None:
        if limit < 1 or window <= 0:
            raise ValueError("limit >= 1 and window > 0")
        self.limit, self.window, self.clock = limit, window, clock
        self._lock = threading.Lock()
        self._allowed: deque[float] = deque()

    def _forget_old(self, now: float) -> None:
        while self._allowed and self._allowed[0] <= now - self.window:
            self._allowed.popleft()

    async def take(self, n: int = 1) -> float | None:
        return self.acquire(n)

    def acquire(self, n: int = 1) -> float | None:
        """Take ``n`` slots; None when allowed, else the seconds until they would be free (in memory: no wait)."""
        now = self.clock.now()
        with self._lock:
            self._forget_old(now)
            if len(self._allowed) + n <= self.limit:
                self._allowed.extend([now] * n)
                return None
            if n > self.limit:
                return self.window
            # the slot that frees the n-th place is the (len + n - limit)-th oldest
            blocking = self._allowed[len(self._allowed) + n - self.limit - 1]
            return min(self.window, max(0.0, blocking + self.window - now))  # float sums may overshoot by an ulp

    async def remaining(self) -> int:
        now = self.clock.now()
        with self._lock:
            self._forget_old(now)
            return self.limit - len(self._allowed)


#: How long (seconds, the gateway's clock) a limiter counts on its own after the shared log could not be reached.
SHARED_LOG_PAUSE = 5.0


class SharedLimiter:
    """The same log in the shared database, one per ``scope`` (an account): every replica counts every send.

    When the database cannot be reached, each replica counts in memory for a while instead (the same limit per
    replica): a call that does not need the database otherwise (a chat list) does not wait on it."""

    def __init__(self, store: Store, scope: str, limit: int, window: float, clock: Clock) -> None:
        if limit < 1 or window <= 0:
            raise ValueError("limit >= 1 and window > 0")
        self.store, self.scope, self.limit, self.window, self.clock = store, scope, limit, window, clock
        self._local = SlidingWindowLimiter(limit, window, clock)
        self._local_until = 0.0

    async def take(self, n: int = 1) -> float | None:
        if self.clock.now() < self._local_until:
            return self._local.acquire(n)
        try:
            return await self.store.take_slots(self.scope, n, self.clock.now(), self.limit, self.window)
        except StorageError:
            self._local_until = self.clock.now() + SHARED_LOG_PAUSE
            return self._local.acquire(n)

    async def remaining(self) -> int:
        return await self.store.slots_remaining(self.scope, self.clock.now(), self.limit, self.window)
