"""Rate limiters with a planted bug, put in place of the gateway's own (``avito_gateway.app.SlidingWindowLimiter``)."""

from __future__ import annotations

import avito_gateway.ratelimit

__all__ = ["NeverRefuses", "WindowRestartsOnEveryRequest"]


class NeverRefuses(avito_gateway.ratelimit.SlidingWindowLimiter):
    def acquire(self, n: int = 1) -> float | None:
        return None


class WindowRestartsOnEveryRequest(avito_gateway.ratelimit.SlidingWindowLimiter):
    """A fixed window that restarts whenever a request comes in, refused or not: steady traffic keeps it shut."""

    def acquire(self, n: int = 1) -> float | None:
        now = self.clock.now()
        with self._lock:
            if self._allowed and now - self._allowed[-1] >= self.window:
                self._allowed.clear()
            if len(self._allowed) + n <= self.limit:
                self._allowed.extend([now] * n)
                return None
            self._allowed[-1] = now  # the bug: a refused request restarts the window
            return self.window
