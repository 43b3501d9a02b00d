"""Outbox claims under any interleaving of two replicas: claiming, renewing, delivering, failing, dying (no
release), pausing and coming back with the claims it held, and time passing.

Whatever happens: a claim hands out only the oldest pending item of its chat, never one another replica holds
under a live lease, each with a generation one above the item's last; a renewal keeps exactly the claims still
current and holds them off the other replica until it runs out; a mark (delivered, failed, renewed) with a
generation that is not the item's current one changes nothing, one with the current generation is taken; and
once everyone works again every item is delivered, in per-chat order."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from avito_gateway.store import OutboxItem, SqliteStore

USER = 100000001
LEASE = 10.0
OWNERS = ("replica-a", "replica-b")

operations = st.lists(st.one_of(
    st.tuples(st.just("claim"), st.sampled_from(OWNERS), st.integers(1, 4)),
    st.tuples(st.just("renew"), st.sampled_from(OWNERS), st.just(0)),
    st.tuples(st.just("deliver"), st.sampled_from(OWNERS), st.integers(0, 3)),
    st.tuples(st.just("fail"), st.sampled_from(OWNERS), st.integers(0, 3)),
    st.tuples(st.just("release"), st.sampled_from(OWNERS), st.just(0)),  # a clean stop
    st.tuples(st.just("die"), st.sampled_from(OWNERS), st.just(0)),  # SIGKILL: its claims stay until the lease
    st.tuples(st.just("pause"), st.sampled_from(OWNERS), st.just(0)),  # SIGSTOP: it keeps what it held ...
    st.tuples(st.just("resume"), st.sampled_from(OWNERS), st.just(0)),  # ... and acts on it after SIGCONT
    # paused past its lease while the other replica claims, then back, acting on what it held
    st.tuples(st.just("stall"), st.sampled_from(OWNERS), st.integers(1, 4)),
    st.tuples(st.just("wait"), st.just(""), st.integers(1, 15)),
), max_size=50)
chats = st.lists(st.sampled_from(["chat-1", "chat-2", "chat-3"]), min_size=1, max_size=12)


def _check_claim(before: list[OutboxItem], got: list[OutboxItem], owner: str, now: float,
                 renewed_until: dict[int, tuple[str, float]]) -> None:
    pending = [i for i in before if i.status == "pending"]
    for item in got:
        earlier = [i.id for i in pending if i.chat_id == item.chat_id and i.id < item.id]
        assert not earlier, f"{owner} got item {item.id} while {earlier} of its chat still wait"
        was = next(i for i in before if i.id == item.id)
        held_by_other = was.claimed_by not in (None, owner) and (was.claimed_until or 0) > now
        assert not held_by_other, f"{owner} got item {item.id}, held by {was.claimed_by} until {was.claimed_until}"
        renewer, until = renewed_until.get(item.id, (owner, 0.0))
        assert renewer == owner or until <= now, f"{owner} got item {item.id} {renewer} renewed until {until}"
        assert item.next_attempt_at <= now  # not before its retry is due
        assert item.generation == was.generation + 1, "a claim's generation is one above the item's last"
    assert len({i.chat_id for i in got}) == len(got)  # one item per chat at a time


@settings(max_examples=150, deadline=None)
@given(chat_of=chats, ops=operations)
def test_claims_keep_order_fence_stale_holders_and_never_share_a_live_item(chat_of: list[str],
                                                                          ops: list[tuple[str, str, int]]) -> None:
    asyncio.run(_claims(chat_of, ops))


async def _claims(chat_of: list[str], ops: list[tuple[str, str, int]]) -> None:
    store = SqliteStore(Path(tempfile.mkdtemp(prefix="claims-")) / "gateway.db")
    now = 1_000.0
    for n, chat in enumerate(chat_of):
        await store.record_inbound(account=USER, message_id=f"m{n}", chat_id=chat, author_id=7, kind="customer",
                                   raw={"payload": {"value": {"id": f"m{n}"}}}, now=now, forward=True)
    held: dict[str, list[OutboxItem]] = {owner: [] for owner in OWNERS}
    paused: dict[str, list[OutboxItem]] = {owner: [] for owner in OWNERS}
    renewed_until: dict[int, tuple[str, float]] = {}
    first_delivery: dict[str, list[int]] = {}

    async def everything() -> dict[int, OutboxItem]:
        return {i.id: i for i in await store.outbox(limit=1000)}

    def current(item: OutboxItem, state: dict[int, OutboxItem]) -> bool:
        """Still the item's claim: the same generation, and the item not finished."""
        return state[item.id].generation == item.generation and state[item.id].status == "pending"

    async def deliver(item: OutboxItem) -> None:
        state = await everything()
        taken = await store.delivered(item.id, item.generation, now)
        assert taken == current(item, state), f"delivered {item.id} gen {item.generation}: {state[item.id]}"
        if not taken:  # a fenced write changes nothing
            assert (await everything())[item.id] == state[item.id]
            return
        order = first_delivery.setdefault(item.chat_id, [])
        if item.id not in order:
            order.append(item.id)

    for op, owner, arg in ops:
        if op == "claim":
            before = list((await everything()).values())
            got = await store.claim(now, arg, owner, LEASE)
            _check_claim(before, got, owner, now, renewed_until)
            held[owner] += got
        elif op == "renew" and held[owner]:
            state = await everything()
            asked = {i.id: i.generation for i in held[owner]}
            kept = await store.renew_claims(owner, asked, now + LEASE)
            assert kept == {i.id for i in held[owner] if current(i, state) and state[i.id].claimed_by == owner}
            renewed_until.update({item_id: (owner, now + LEASE) for item_id in kept})
        elif op in ("deliver", "fail") and held[owner]:
            item = held[owner].pop(arg % len(held[owner]))
            if op == "deliver":
                await deliver(item)
            else:
                state = await everything()
                taken = await store.failed(item.id, item.generation, "n8n answered 500", now + 5, dead=False)
                assert taken == current(item, state)
                if taken:  # a failed attempt gives the item back for its retry
                    renewed_until.pop(item.id, None)
                if not taken:
                    assert (await everything())[item.id] == state[item.id]
        elif op == "release":  # a clean stop gives its claims (and their renewals) back
            await store.release_claims(owner)
            held[owner] = []
            renewed_until = {i: (who, until) for i, (who, until) in renewed_until.items() if who != owner}
        elif op == "die":
            held[owner] = []
        elif op == "pause":
            paused[owner] += held[owner]
            held[owner] = []
        elif op == "resume":
            held[owner] += paused[owner]
            paused[owner] = []
        elif op == "stall":
            other = next(o for o in OWNERS if o != owner)
            now += LEASE + 1
            before = list((await everything()).values())
            got = await store.claim(now, arg, other, LEASE)
            _check_claim(before, got, other, now, renewed_until)
            held[other] += got
        elif op == "wait":
            now += arg

    # everyone works again: whatever was claimed by the dead comes back after the lease
    for _ in range(len(chat_of) * 4 + 4):
        now += LEASE
        for owner in OWNERS:
            before = list((await everything()).values())
            got = await store.claim(now, 10, owner, LEASE)
            _check_claim(before, got, owner, now, renewed_until)
            for item in got:
                await deliver(item)
    final: list[Any] = list((await everything()).values())
    await store.close()
    assert all(i.status == "delivered" for i in final), [(i.id, i.status) for i in final]
    for chat, order in first_delivery.items():
        assert order == sorted(order), f"{chat} delivered out of order: {order}"
    assert sorted(i for order in first_delivery.values() for i in order) == sorted(i.id for i in final)
