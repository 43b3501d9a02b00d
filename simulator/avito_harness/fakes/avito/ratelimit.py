"""Rate limits as behaviour: per-account fixed windows on the injectable clock."""

from __future__ import annotations

import math
import threading
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["RateDecision", "RateLimiter", "RateLimits"]


@dataclass
class RateLimits:
    """Requests allowed per window for one account: all operations, and per operation id."""

    per_minute: int | None = None
    per_operation: dict[str, int] = field(default_factory=dict)
    retry_after: bool = False
    window: float = 60.0

    def __post_init__(self) -> None:
        if self.per_minute is not None and self.per_minute < 1:
            raise ValueError("per_minute must be >= 1 or null")
        if any(v < 1 for v in self.per_operation.values()):
            raise ValueError("per_operation limits must be >= 1")
        if self.window <= 0:
            raise ValueError("window must be > 0")

    @property
    def enabled(self) -> bool:
        return self.per_minute is not None or bool(self.per_operation)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RateDecision:
    allowed: bool
    limit: int
    remaining: int
    reset_in: float

    def headers(self, with_retry_after: bool) -> dict[str, str]:
        out = {"X-RateLimit-Limit": str(self.limit), "X-RateLimit-Remaining": str(self.remaining)}
        if not self.allowed and with_retry_after:
            out["Retry-After"] = str(max(1, math.ceil(self.reset_in)))
        return out


class RateLimiter:
    """Counts requests per (account, bucket) in windows aligned to the clock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[tuple[int, str], tuple[float, int]] = {}

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()

    def hit(self, account: int, operation: str, limits: RateLimits, now: float) -> RateDecision | None:
        """Count one request; None when no limit applies to it."""
        buckets = []
        if operation in limits.per_operation:
            buckets.append((f"op:{operation}", limits.per_operation[operation]))
        if limits.per_minute is not None:
            buckets.append(("all", limits.per_minute))
        if not buckets:
            return None
        start = math.floor(now / limits.window) * limits.window
        reset_in = start + limits.window - now
        with self._lock:
            states = []
            for key, limit in buckets:
                began, count = self._counts.get((account, key), (start, 0))
                if began != start:
                    count = 0
                states.append((key, limit, count))
            tightest = min(states, key=lambda s: s[1] - s[2])
            allowed = all(count < limit for _, limit, count in states)
            if allowed:
                for key, _limit, count in states:
                    self._counts[(account, key)] = (start, count + 1)
            _, limit, count = tightest
            used = count + 1 if allowed else count
            return RateDecision(allowed, limit, max(0, limit - used), reset_in)
