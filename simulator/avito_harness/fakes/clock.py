"""The injectable clock: real time by default, frozen and advanced by tests.

Every domain wait in the project (token expiry, voice-link expiry, rate-limit
windows, the delete window, webhook retry backoff, the n8n batching window)
reads time from a :class:`Clock` and schedules work with :meth:`Clock.call_at`.
This is the only module allowed to call ``time.time`` / ``time.monotonic``.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["Clock", "FakeClock", "ScheduledCall", "SystemClock", "DEFAULT_START"]

log = logging.getLogger(__name__)

#: 2025-12-01T12:00:00Z: where a frozen clock starts unless told otherwise.
DEFAULT_START = 1764590400.0


@dataclass(order=True)
class ScheduledCall:
    """A callback due at a clock time; cancel() keeps it from running."""

    due: float
    seq: int
    fn: Callable[[], None] = field(compare=False)
    name: str = field(default="", compare=False)
    cancelled: bool = field(default=False, compare=False)

    def cancel(self) -> None:
        self.cancelled = True


class Clock:
    """Wall clock with an offset, optionally frozen, with scheduled callbacks.

    Running (not frozen): ``now()`` is real time plus an offset, and due
    callbacks fire from a daemon thread as real time passes.
    Frozen: time stands still until :meth:`advance` or :meth:`set_time`, which
    run every callback that falls due, in due order, before they return.
    """

    def __init__(self, *, frozen_at: float | None = None) -> None:
        self._lock = threading.RLock()
        self._wake = threading.Condition(self._lock)
        self._offset = 0.0
        self._mono_offset = 0.0
        self._frozen_at = frozen_at
        self._frozen_mono = 0.0
        self._initial_frozen_at = frozen_at
        self._queue: list[ScheduledCall] = []
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._firing = threading.Lock()

    # --- reading -----------------------------------------------------------
    def now(self) -> float:
        """Unix time in seconds."""
        with self._lock:
            if self._frozen_at is not None:
                return self._frozen_at
            return time.time() + self._offset

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (advances with :meth:`advance`)."""
        with self._lock:
            if self._frozen_at is not None:
                return self._frozen_mono
            return time.monotonic() + self._mono_offset

    @property
    def frozen(self) -> bool:
        return self._frozen_at is not None

    # --- control -----------------------------------------------------------
    def freeze(self, at: float | None = None) -> None:
        """Stop time at ``at`` (default: now)."""
        with self._lock:
            current = self.now()
            self._frozen_mono = self.monotonic()
            self._frozen_at = current if at is None else at
            self._wake.notify_all()
        if at is not None and at > current:
            self._run_due(at)

    def unfreeze(self) -> None:
        """Let time run again from where it stands."""
        with self._lock:
            if self._frozen_at is None:
                return
            self._offset = self._frozen_at - time.time()
            self._mono_offset = self._frozen_mono - time.monotonic()
            self._frozen_at = None
            self._wake.notify_all()
        self._ensure_thread()

    def advance(self, seconds: float) -> float:
        """Move time forward and run everything due up to then; returns the new now()."""
        if not math.isfinite(seconds) or seconds < 0:
            raise ValueError("the clock only moves forward, by a finite number of seconds")
        with self._lock:
            target = self.now() + seconds
        self._run_due(target)
        with self._lock:
            self._move_to(target)
            return self.now()

    def set_time(self, when: float) -> float:
        """Jump to an absolute time (forward only), running due callbacks."""
        return self.advance(max(0.0, when - self.now()))

    def reset(self) -> None:
        """Forget scheduled calls and return to the initial mode and time."""
        with self._lock:
            self._queue.clear()
            self._offset = 0.0
            self._mono_offset = 0.0
            self._frozen_mono = 0.0
            self._frozen_at = self._initial_frozen_at
            self._wake.notify_all()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._wake.notify_all()

    # --- scheduling --------------------------------------------------------
    def call_at(self, when: float, fn: Callable[[], None], name: str = "") -> ScheduledCall:
        """Run ``fn`` once the clock reads ``when`` or later."""
        call = ScheduledCall(when, next(self._seq), fn, name)
        with self._lock:
            heapq.heappush(self._queue, call)
            self._wake.notify_all()
        if not self.frozen:
            self._ensure_thread()
        return call

    def call_later(self, delay: float, fn: Callable[[], None], name: str = "") -> ScheduledCall:
        return self.call_at(self.now() + delay, fn, name)

    def pending(self) -> list[ScheduledCall]:
        """Scheduled calls not yet run, earliest first."""
        with self._lock:
            return sorted(c for c in self._queue if not c.cancelled)

    # --- internals ---------------------------------------------------------
    def _move_to(self, target: float) -> None:
        if self._frozen_at is not None:
            self._frozen_mono += max(0.0, target - self._frozen_at)
            self._frozen_at = max(self._frozen_at, target)
        else:
            delta = target - self.now()
            if delta > 0:
                self._offset += delta
                self._mono_offset += delta

    def _pop_due(self, limit: float) -> ScheduledCall | None:
        with self._lock:
            while self._queue and self._queue[0].cancelled:
                heapq.heappop(self._queue)
            if self._queue and self._queue[0].due <= limit:
                return heapq.heappop(self._queue)
            return None

    def _run_due(self, target: float) -> None:
        # One firer at a time keeps callbacks in due order across threads.
        with self._firing:
            while (call := self._pop_due(target)) is not None:
                with self._lock:
                    if call.due > self.now():
                        self._move_to(call.due)
                self._fire(call)

    @staticmethod
    def _fire(call: ScheduledCall) -> None:
        try:
            call.fn()
        except Exception:  # a failing callback must not stop the clock
            log.exception("scheduled call %r failed", call.name or call.fn)

    def _ensure_thread(self) -> None:
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._thread = threading.Thread(target=self._loop, name="sim-clock", daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        while True:
            with self._lock:
                if self._closed:
                    return
                if self._frozen_at is not None or not self._queue:
                    self._wake.wait()
                    continue
                wait = self._queue[0].due - self.now()
                if wait > 0:
                    self._wake.wait(timeout=min(wait, 60.0))
                    continue
                limit = self.now()
            self._run_due_running(limit)

    def _run_due_running(self, limit: float) -> None:
        with self._firing:
            while (call := self._pop_due(limit)) is not None:
                self._fire(call)


def SystemClock() -> Clock:  # noqa: N802 - reads like the class it stands for
    """A running clock: real time, callbacks fire as real time passes."""
    return Clock()


def FakeClock(start: float = DEFAULT_START) -> Clock:  # noqa: N802
    """A frozen clock for tests: time moves only with advance()."""
    return Clock(frozen_at=start)


def clock_from(mode: str, start: float | None) -> Clock:
    """The clock ``SIM_CLOCK`` names: ``frozen`` (virtual, moved by the harness) or the system's, optionally set."""
    if mode == "frozen":
        return FakeClock(start or DEFAULT_START)
    clock = SystemClock()
    if start is not None:
        clock.set_time(start)
    return clock
