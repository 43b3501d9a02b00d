"""The gateway's clock: real by default; tests inject a virtual one.

Anything with ``now()`` (unix seconds) and ``monotonic()`` works; ``sleep``
is looked up on the clock and falls back to a real ``asyncio.sleep``. This is
the only gateway module that reads wall time.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol, runtime_checkable

__all__ = ["Clock", "SystemClock", "sleep"]


@runtime_checkable
class Clock(Protocol):
    def now(self) -> float: ...

    def monotonic(self) -> float: ...


class SystemClock:
    """Wall time."""

    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()


async def sleep(clock: Clock, seconds: float) -> None:
    """Wait ``seconds`` on ``clock``: virtual clocks advance, the system clock really waits."""
    if seconds <= 0:
        return
    advance = getattr(clock, "advance", None)
    if advance is not None and getattr(clock, "frozen", False):
        # a thread: advancing may run callbacks that call back into this very event loop
        await asyncio.to_thread(advance, seconds)
        return
    await asyncio.sleep(seconds)
