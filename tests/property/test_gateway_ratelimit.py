"""The gateway's limiter: never more than N allowed in any window, never a refusal while under N."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from avito_gateway.ratelimit import SlidingWindowLimiter
from avito_harness.fakes.clock import FakeClock


@given(
    limit=st.integers(1, 20),
    window=st.sampled_from([1.0, 10.0, 60.0]),
    gaps=st.lists(st.floats(0, 30, allow_nan=False), min_size=1, max_size=120),
)
def test_sliding_window_is_exact(limit: int, window: float, gaps: list[float]) -> None:
    clock = FakeClock(0)
    limiter = SlidingWindowLimiter(limit, window, clock)
    allowed: list[float] = []
    for gap in gaps:
        clock.advance(gap)
        now = clock.now()
        in_window = [t for t in allowed if t > now - window]
        wait = limiter.acquire()
        if len(in_window) < limit:
            assert wait is None, "refused while under the limit"
            allowed.append(now)
        else:
            assert wait is not None and 0 <= wait <= window
            oldest_blocking = in_window[len(in_window) - limit]
            assert abs(wait - (oldest_blocking + window - now)) < 1e-9
    for t in allowed:  # never more than `limit` in any window
        assert sum(1 for u in allowed if t <= u < t + window) <= limit
