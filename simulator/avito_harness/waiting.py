"""Waiting in real time, the one way the harness does it: poll a condition with a deadline, or pause.

Waits are by effect (a condition polled until it holds or a deadline passes), never a bare sleep that hopes
the other side was quick enough; a pause is only for time that must pass on someone else's clock (a foreign
gateway's rate window, its retry backoff). Given a :class:`Budget` (the judge's scenario deadline), both stop
when it runs out. Virtual time is the clock's (:mod:`avito_harness.fakes.clock`), not this module's.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import NoReturn, Protocol, TypeVar

__all__ = ["Budget", "pause", "wait_until"]

T = TypeVar("T")


class Budget(Protocol):
    """A deadline that is not the wait's own (a scenario's): ``over`` raises when it is spent."""

    def remaining(self) -> float: ...

    def over(self, where: str) -> NoReturn: ...


def wait_until(predicate: Callable[[], T], timeout: float, *, interval: float = 0.05, budget: Budget | None = None,
               what: str = "a condition") -> T | None:
    """Poll ``predicate`` until it returns something truthy (returned) or ``timeout`` seconds pass (None; ``inf``
    waits for ever). With a ``budget``, its end stops the wait too (``budget.over`` raises)."""
    deadline = time.monotonic() + timeout if math.isfinite(timeout) else math.inf
    waiter = threading.Event()
    while True:
        found = predicate()
        if found:
            return found
        now = time.monotonic()
        if now >= deadline:
            return None
        if budget is not None and budget.remaining() <= 0:
            budget.over(f"waiting for {what}")
        waiter.wait(min(interval, max(deadline - now, 0.0)))


def pause(seconds: float, *, budget: Budget | None = None, what: str = "time to pass") -> None:
    """Let ``seconds`` of real time pass; with a ``budget``, a pause it would cut short is refused at once."""
    if budget is not None and budget.remaining() < seconds:
        budget.over(f"before waiting {seconds:g} s for {what}")
    threading.Event().wait(max(seconds, 0.0))
