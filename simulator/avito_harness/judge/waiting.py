"""Waiting in real time, the one way the judge does it: poll a condition with a deadline, or pause.

Waits are by effect (a condition polled until it holds or a deadline passes), never a bare sleep that hopes
the other side was quick enough; a pause is only for time that must pass on a foreign gateway's own clock
(its rate window, its retry backoff). Both respect the scenario's deadline when given its bounds.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

from avito_harness.judge.bounded_http import Bounds, ScenarioDeadlineHit

__all__ = ["pause", "wait_until"]

T = TypeVar("T")


def wait_until(predicate: Callable[[], T], timeout: float, *, interval: float = 0.05,
               bounds: Bounds | None = None, what: str = "a condition") -> T | None:
    """Poll ``predicate`` until it returns something truthy (returned) or ``timeout`` seconds pass (None).
    With ``bounds``, the scenario's deadline ends the wait too, as :class:`ScenarioDeadlineHit`."""
    deadline = time.monotonic() + timeout
    waiter = threading.Event()
    while True:
        found = predicate()
        if found:
            return found
        now = time.monotonic()
        if now >= deadline:
            return None
        if bounds is not None:
            bounds.check(f"waiting for {what}")
        waiter.wait(min(interval, max(deadline - now, 0.0)))


def pause(seconds: float, *, bounds: Bounds | None = None, what: str = "time to pass") -> None:
    """Let ``seconds`` of real time pass (for a foreign gateway's own clock); refuses to start a pause the
    scenario's deadline would cut short."""
    if bounds is not None and bounds.remaining() < seconds:
        raise ScenarioDeadlineHit(bounds.scenario_timeout or 0, f"before waiting {seconds:g} s for {what}")
    threading.Event().wait(max(seconds, 0.0))
