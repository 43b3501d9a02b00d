"""The Universal Batcher neither loses nor duplicates a message for any arrival pattern and any window;
every batch holds one client's messages, in arrival order, all within its window."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from avito_harness.fakes.clock import FakeClock
from avito_harness.fakes.n8n.flows.batcher import Batch, Batcher

arrivals = st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), st.floats(0, 50, allow_nan=False)), max_size=60)


@given(pattern=arrivals, window=st.sampled_from([0.0, 1.0, 5.0, 30.0]))
def test_batches_partition_the_messages(pattern: list[tuple[str, float]], window: float) -> None:
    clock = FakeClock(0)
    closed: list[Batch] = []
    batcher = Batcher(clock, closed.append)
    sent: list[dict[str, Any]] = []
    for n, (client, gap) in enumerate(pattern):
        clock.advance(gap)
        message = {"n": n, "client": client, "at": clock.now(), "text": str(n)}
        sent.append(message)
        batcher.add(("t", "avito", client, f"chat-{client}"), message, window)
    clock.advance(window + 1)
    assert batcher.open_batches() == []
    got = [m["n"] for b in closed for m in b.messages]
    assert sorted(got) == [m["n"] for m in sent]  # nothing lost, nothing twice
    for batch in closed:
        assert {m["client"] for m in batch.messages} == {batch.key[2]}
        ns = [m["n"] for m in batch.messages]
        assert ns == sorted(ns)  # arrival order
        assert all(batch.opened_at <= m["at"] <= batch.opened_at + window for m in batch.messages)
        assert batch.closed_at == batch.opened_at + window
    for client in "abc":
        mine = sorted((b for b in closed if b.key[2] == client), key=lambda b: b.opened_at)
        for before, after in zip(mine, mine[1:], strict=False):
            assert after.opened_at >= before.opened_at + window  # a client's batches never overlap
