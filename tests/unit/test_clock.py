"""The clock: frozen time, advance runs what falls due in order, running mode fires by itself."""

from __future__ import annotations

import sys
import threading

import pytest

from avito_harness.fakes.clock import DEFAULT_START, FakeClock, SystemClock


def test_frozen_clock_stands_still_until_advanced() -> None:
    clock = FakeClock()
    assert clock.now() == DEFAULT_START == clock.now()
    assert clock.advance(2.5) == DEFAULT_START + 2.5
    assert clock.monotonic() == 2.5


def test_advance_runs_due_calls_in_due_order_and_at_their_time() -> None:
    clock = FakeClock(1000)
    seen: list[tuple[str, float]] = []
    clock.call_at(1030, lambda: seen.append(("b", clock.now())))
    clock.call_at(1010, lambda: seen.append(("a", clock.now())))
    clock.call_at(1100, lambda: seen.append(("late", clock.now())))
    clock.advance(30)
    assert seen == [("a", 1010), ("b", 1030)]
    assert [c.due for c in clock.pending()] == [1100]


def test_calls_scheduled_by_calls_run_if_they_fall_due_in_the_same_advance() -> None:
    clock = FakeClock(0)
    seen: list[float] = []

    def tick() -> None:
        seen.append(clock.now())
        if len(seen) < 5:
            clock.call_later(10, tick)

    clock.call_later(10, tick)
    clock.advance(35)
    assert seen == [10, 20, 30]
    clock.advance(100)
    assert seen == [10, 20, 30, 40, 50]


def test_cancelled_calls_do_not_run_and_a_failing_call_does_not_stop_the_clock() -> None:
    clock = FakeClock(0)
    seen: list[str] = []
    clock.call_later(1, lambda: seen.append("cancelled")).cancel()
    clock.call_later(2, lambda: 1 / 0)  # type: ignore[func-returns-value]
    clock.call_later(3, lambda: seen.append("ran"))
    clock.advance(5)
    assert seen == ["ran"]


def test_the_clock_never_goes_back() -> None:
    with pytest.raises(ValueError):
        FakeClock().advance(-1)


def test_reset_forgets_calls_and_returns_to_the_start() -> None:
    clock = FakeClock(0)
    clock.call_later(10, lambda: None)
    clock.advance(5)
    clock.reset()
    assert clock.now() == 0 and clock.pending() == []


def test_running_clock_can_jump_ahead_and_fires_due_calls_itself() -> None:
    clock = SystemClock()
    fired = threading.Event()
    start = clock.now()
    clock.call_later(3600, fired.set)
    clock.advance(3600)
    assert fired.is_set() and clock.now() >= start + 3600
    soon = threading.Event()
    clock.call_later(0.05, soon.set)
    assert soon.wait(5), "a running clock fires due calls from its own thread"
    clock.close()


def test_freeze_and_unfreeze() -> None:
    clock = SystemClock()
    clock.freeze(500)
    assert clock.frozen and clock.now() == 500
    clock.unfreeze()
    assert not clock.frozen and 500 <= clock.now() < 560
    clock.close()


def test_a_reader_never_sees_time_go_back_while_another_thread_freezes_moves_and_lets_it_go() -> None:
    """Every request reads ``now()`` while a test's thread may freeze, advance or unfreeze the clock. A reading
    taken between two steps of a change (freeze reads the time, then stops it there; unfreeze sets an offset,
    then lets go) would step back: reading without the lock did, by microseconds at each freeze."""
    clock = SystemClock()
    clock.advance(86_400)
    stop = threading.Event()
    back: list[tuple[float, float]] = []

    def read() -> None:
        last = clock.now()
        while not stop.is_set():
            now = clock.now()
            if now < last:
                back.append((last, now))
            last = now

    reader = threading.Thread(target=read)
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # threads take turns every few bytecodes: a reader lands between any two steps
    reader.start()
    try:
        for _ in range(3000):
            clock.freeze()
            clock.advance(0.5)
            clock.unfreeze()
            clock.advance(0.5)
    finally:
        stop.set()
        reader.join()
        sys.setswitchinterval(interval)
        clock.close()
    assert back == []
