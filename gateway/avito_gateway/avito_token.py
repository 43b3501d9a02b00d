"""One account's OAuth token: a single request to ``/token`` at a time, however many callers wait, and they
share its outcome, a failure included.

A failure is kept for a backoff, so callers arriving meanwhile fail at once instead of asking again: a secret
Avito refuses (400/401/403) for 5 s doubling to 5 min, any other failure (no answer, 5xx, 429) for
RETRY_MIN_WAIT doubling to RETRY_MAX_WAIT. ``/health`` and every call read the same state: a storm of calls
costs at most one ``/token`` request per backoff.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from avito_gateway.clock import Clock
from avito_gateway.errors import AvitoApiError
from avito_gateway.settings import GatewaySettings

__all__ = ["REFUSED_BACKOFF", "TokenSource", "TokenState"]

#: Backoff (min, max seconds) after Avito refused the client credentials.
REFUSED_BACKOFF = (5.0, 300.0)
#: Avito's answers to /token that mean the credentials themselves are wrong.
REFUSED = frozenset({400, 401, 403})


@dataclass
class TokenState:
    value: str | None = None
    expires_at: float = 0.0
    obtained_at: float | None = None
    refreshes: int = 0


def _again(exc: AvitoApiError) -> AvitoApiError:
    """A fresh copy of a shared failure: one exception object raised in many places would pile up tracebacks."""
    return type(exc)(exc.message, avito_status=exc.avito_status, details=exc.details, retry_after=exc.retry_after)


class TokenSource:
    def __init__(self, settings: GatewaySettings, clock: Clock,
                 fetch: Callable[[], Awaitable[tuple[str, float]]]) -> None:
        """``fetch`` asks Avito once: the token and its lifetime in seconds (raises AvitoApiError)."""
        self.settings, self.clock, self._fetch = settings, clock, fetch
        self.state = TokenState()
        self._flight: asyncio.Future[str] | None = None
        self._failure: AvitoApiError | None = None
        self._retry_at = 0.0
        self._failures = 0
        #: Requests made to /token (each flight is one).
        self.requests = 0

    def _fresh(self) -> bool:
        return (self.state.value is not None
                and self.clock.now() < self.state.expires_at - self.settings.token_refresh_margin)

    def failure(self) -> AvitoApiError | None:
        """The last failure while its backoff runs (the reason /health gives), else None."""
        if self._failure is not None and self.clock.now() < self._retry_at:
            return self._failure
        return None

    async def get(self) -> str:
        if self._fresh():
            return self.state.value  # type: ignore[return-value]
        failed = self.failure()
        if failed is not None:
            raise _again(failed)
        if self._flight is None:
            self._flight = asyncio.ensure_future(self._one_flight())
        try:  # shielded: a caller that gives up does not end the request the others wait for
            return await asyncio.shield(self._flight)
        except AvitoApiError as exc:
            raise _again(exc) from None

    async def _one_flight(self) -> str:
        try:
            self.requests += 1
            value, lifetime = await self._fetch()
        except AvitoApiError as exc:
            self._failed(exc)
            raise
        finally:
            self._flight = None
        now = self.clock.now()
        if not math.isfinite(lifetime) or lifetime <= 0:
            lifetime = 86400.0
        self.state = TokenState(value, now + lifetime, now, self.state.refreshes + 1)
        self._failure, self._failures = None, 0
        return value

    def _failed(self, exc: AvitoApiError) -> None:
        low, high = (REFUSED_BACKOFF if exc.avito_status in REFUSED
                     else (self.settings.retry_min_wait, self.settings.retry_max_wait))
        self._failure = exc
        self._retry_at = self.clock.now() + min(high, low * 2 ** min(self._failures, 16))
        self._failures += 1

    def retry_at(self) -> float:
        """When a call may ask Avito again (now or earlier: at once)."""
        return self._retry_at if self.failure() is not None else self.clock.now()

    def drop(self, value: str) -> None:
        """Avito called ``value`` expired: the next call fetches a new one."""
        if self.state.value == value:
            self.state.value = None

    def public_state(self) -> dict[str, Any]:
        """What /api/token shows: never any part of the token itself."""
        now = self.clock.now()
        live = self.state.value is not None and now < self.state.expires_at
        return {
            "obtained": live,
            "token_type": "Bearer",
            "expires_in": max(0, int(self.state.expires_at - now)) if live else 0,
            "obtained_at": self.state.obtained_at,
            "refreshes": self.state.refreshes,
        }
