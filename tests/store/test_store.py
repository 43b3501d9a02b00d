"""One store interface, two engines, the same behaviour: what the gateway promises about its state."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from avito_gateway.errors import StorageError
from avito_gateway.store import BEHIND_HEAD, OutboxItem, SqliteStore, Store, Tx

pytestmark = pytest.mark.anyio
ACCOUNT, OTHER = 100000001, 200000002
T = TypeVar("T")


def in_threads(*work: Callable[[], Awaitable[T]]) -> list[T]:
    """Each piece of work on its own thread and event loop, started together (replicas are processes)."""
    results: list[T] = []
    start = threading.Barrier(len(work))

    def run(one: Callable[[], Awaitable[T]]) -> None:
        start.wait()
        results.append(asyncio.run(one()))  # type: ignore[arg-type]

    threads = [threading.Thread(target=run, args=(w,)) for w in work]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def webhook(message_id: str, chat_id: str, user_id: int = ACCOUNT) -> dict[str, Any]:
    return {"payload": {"type": "message", "value": {"id": message_id, "chat_id": chat_id, "user_id": user_id}}}


async def put(store: Store, message_id: str, chat_id: str, *, account: int = ACCOUNT, now: float = 1000.0) -> bool:
    return await store.record_inbound(account=account, message_id=message_id, chat_id=chat_id, author_id=7, kind="customer",
                                raw=webhook(message_id, chat_id, account), now=now, forward=True)


async def test_a_redelivered_webhook_is_stored_once_with_one_outbox_item(store: Store) -> None:
    assert await put(store, "m1", "c1") is True
    assert await put(store, "m1", "c1") is False
    assert await put(store, "m1", "c1", account=OTHER) is True  # message ids are unique per account
    assert [i.raw["payload"]["value"]["id"] for i in await store.outbox()] == ["m1", "m1"]
    assert await store.counts() == {"inbound_customer": 2, "outbox_pending": 2, "rejected": 0}


async def test_only_the_oldest_pending_item_of_a_chat_can_be_claimed(store: Store) -> None:
    for n in range(3):
        await put(store, f"a{n}", "chat-a")
    await put(store, "b0", "chat-b")
    first = await store.claim(1000.0, 10, "replica-1", lease=30)
    assert sorted(i.raw["payload"]["value"]["id"] for i in first) == ["a0", "b0"]
    assert await store.claim(1000.0, 10, "replica-2", lease=30) == []  # both chats' heads are taken
    head = next(i for i in first if i.chat_id == "chat-a")
    assert await store.delivered(head.id, head.generation, 1001.0)
    assert [i.raw["payload"]["value"]["id"] for i in await store.claim(1001.0, 10, "replica-2", lease=30)] == ["a1"]


async def test_two_replicas_claiming_at_once_never_get_the_same_item(open_store: Callable[[], Store]) -> None:
    first, second = open_store(), open_store()
    for n in range(60):
        await put(first, f"m{n}", f"chat-{n}")

    def claim_all(store: Store, owner: str) -> Callable[[], Awaitable[list[int]]]:
        async def claim() -> list[int]:
            got: list[int] = []
            while batch := await store.claim(1000.0, 3, owner, lease=30):
                got += [i.id for i in batch]
            return got
        return claim

    one, two = in_threads(claim_all(first, "r1"), claim_all(second, "r2"))
    assert not set(one) & set(two)
    assert len(one) + len(two) == 60


async def test_a_lapsed_claim_returns_to_the_others_and_a_clean_stop_hands_claims_back(store: Store) -> None:
    await put(store, "m1", "c1")
    await put(store, "m2", "c2")
    claimed = await store.claim(1000.0, 10, "killed", lease=5)
    assert len(claimed) == 2
    assert await store.claim(1004.9, 10, "survivor", lease=5) == []
    assert len(await store.claim(1005.0, 1, "survivor", lease=5)) == 1  # the lease ran out
    assert await store.release_claims("survivor") == 1
    assert len(await store.claim(1005.0, 10, "other", lease=5)) == 2


async def test_a_failed_attempt_backs_off_and_the_last_one_is_a_dead_letter(store: Store) -> None:
    await put(store, "m1", "c1")
    item = (await store.claim(1000.0, 1, "r1", lease=30))[0]
    await store.failed(item.id, item.generation, "n8n answered 500", next_at=1010.0, dead=False)
    assert await store.claim(1009.0, 1, "r1", lease=30) == []
    item = (await store.claim(1010.0, 1, "r2", lease=30))[0]
    assert (item.attempts, item.last_error) == (1, "n8n answered 500")
    await store.failed(item.id, item.generation, "n8n answered 500", next_at=1020.0, dead=True)
    assert [i.status for i in await store.outbox()] == ["dead"]
    assert await store.replay(None, 1030.0) == 1
    assert (await store.claim(1030.0, 1, "r1", lease=30))[0].attempts == 0


async def test_an_idempotency_key_is_claimed_once_across_replicas_and_taken_over_after_its_lease(
        open_store: Callable[[], Store]) -> None:
    first, second = open_store(), open_store()

    def claims(store: Store) -> Callable[[], Awaitable[list[bool]]]:
        async def four() -> list[bool]:
            return list(await asyncio.gather(*(store.claim_idempotency("key-1", "fp", 1000.0, until=1060.0)
                                               for _ in range(4))))
        return four

    wins = [won for per_replica in in_threads(claims(first), claims(second)) for won in per_replica]
    assert [w.generation for w in wins if w is not None] == [1]  # one holder, the first generation
    assert await second.claim_idempotency("key-1", "other-request", 1061.0, until=1100.0) is None
    taken = await second.claim_idempotency("key-1", "fp", 1061.0, until=1100.0)  # the first holder died
    assert taken is not None and (taken.generation, taken.taken_over) == (2, True)  # read the chat before posting
    assert not await first.finish_idempotency("key-1", 1, 200, {"success": True, "id": "stale"})  # fenced
    assert not await first.renew_idempotency("key-1", 1, 2000.0)
    assert await second.finish_idempotency("key-1", 2, 200, {"success": True, "id": "x"})
    found = await first.idempotency("key-1")
    assert found is not None and (found.status, found.response) == (200, {"success": True, "id": "x"})
    assert await first.claim_idempotency("key-1", "fp", 2000.0, until=2060.0) is None  # finished: never run again


async def test_a_released_key_runs_afresh_and_an_unknown_outcome_is_taken_over_at_once(store: Store) -> None:
    claim = await store.claim_idempotency("k", "fp", 1000.0, until=1060.0)
    assert claim is not None and not claim.taken_over
    assert await store.release_idempotency("k", claim.generation)  # nothing was posted
    again = await store.claim_idempotency("k", "fp", 1001.0, until=1061.0)
    assert again is not None and (again.generation, again.taken_over) == (1, False)
    assert await store.lapse_idempotency("k", again.generation, 1002.0)  # posted, landed or not: unknown
    after = await store.claim_idempotency("k", "fp", 1002.0, until=1062.0)  # no waiting out the lease
    assert after is not None and after.taken_over
    assert not await store.release_idempotency("k", again.generation)  # the old holder cannot undo the new claim


async def test_the_rate_limit_log_is_shared_by_every_handle(open_store: Callable[[], Store]) -> None:
    first, second = open_store(), open_store()
    taken = [await s.take_slots("account:a", 1, 1000.0 + n / 100, limit=5, window=60)
             for n, s in enumerate([first, second] * 4)]
    assert taken[:5] == [None] * 5
    assert taken[5] == pytest.approx(60 - 0.05)  # the oldest slot frees the next place
    assert await first.take_slots("account:b", 1, 1000.0, limit=5, window=60) is None  # another account: its own log
    assert await second.slots_remaining("account:a", 1000.1, limit=5, window=60) == 0
    assert await second.take_slots("account:a", 1, 1060.0, limit=5, window=60) is None


async def test_listings_and_replays_are_scoped_to_an_account(store: Store) -> None:
    await put(store, "mine", "c1")
    await put(store, "theirs", "c2", account=OTHER)
    await store.record_rejected("bad", "{}", 1000.0, account=OTHER)
    await store.record_rejected("junk", "<", 1000.0)
    assert [r.message_id for r in await store.inbound(accounts=[ACCOUNT])] == ["mine"]
    assert [i.chat_id for i in await store.outbox(accounts=[OTHER])] == ["c2"]
    assert [r["reason"] for r in await store.rejected(accounts=[ACCOUNT])] == ["junk"]
    assert await store.counts([OTHER]) == {"inbound_customer": 1, "outbox_pending": 1, "rejected": 2}
    (theirs,) = [i for i in await store.claim(1000.0, 10, "r", lease=30) if i.chat_id == "c2"]
    await store.failed(theirs.id, theirs.generation, "x", 1000.0, dead=True)
    assert await store.replay(theirs.id, 1001.0, accounts=[ACCOUNT]) == 0
    assert await store.replay(theirs.id, 1001.0, accounts=[OTHER]) == 1


async def test_retention_forgets_delivered_work_and_keeps_what_is_still_owed(store: Store) -> None:
    await put(store, "old-delivered", "c1", now=0.0)
    await put(store, "old-pending", "c2", now=0.0)
    (first,) = [i for i in await store.claim(0.0, 10, "r", lease=30) if i.chat_id == "c1"]
    await store.delivered(first.id, first.generation, 1.0)
    await store.record_sent("s1", "c1", "hi", 0.0)
    removed = await store.sweep(now=10_000.0, keep_seconds=100, rejected_keep=10)
    assert (removed["outbox"], removed["inbound"], removed["sent"]) == (1, 1, 1)
    assert [i.raw["payload"]["value"]["id"] for i in await store.outbox()] == ["old-pending"]
    assert await put(store, "old-pending", "c2") is False  # its dedupe key lives as long as the work


async def test_meta_once_gives_every_replica_the_same_value(open_store: Callable[[], Store]) -> None:
    first, second = open_store(), open_store()
    assert await first.meta_once("webhook_secret:shop", "AAA") == "AAA"
    assert await second.meta_once("webhook_secret:shop", "BBB") == "AAA"


async def test_a_write_that_fails_is_a_storage_error_remembered_until_a_write_succeeds(store: Store) -> None:
    assert await store.writable(1.0) and store.write_error is None
    async def broken(tx: Tx) -> None:
        await tx.run("INSERT INTO no_such_table VALUES (1)")

    with pytest.raises(StorageError):
        await store._tx(broken)
    assert store.write_error is not None and "no_such_table" in store.write_error
    assert await store.writable(2.0) is False  # a probe alone does not clear it
    await put(store, "m1", "c1")
    assert store.write_error is None and await store.writable(3.0)


async def test_text_with_nul_bytes_is_stored_not_refused(store: Store) -> None:
    """A hostile body with a NUL byte is refused and recorded, never a failed write (which would make Avito
    deliver it again and again); PostgreSQL cannot hold NUL in text, so there it becomes U+FFFD."""
    await store.record_rejected("not JSON: a NUL byte", '{"id": "a\x00b"}', 1000.0, ACCOUNT)
    (row,) = await store.rejected()
    assert row["body"].replace("\ufffd", "\x00") == '{"id": "a\x00b"}'
    await store.record_sent("sent-1", "c1", "привет\x00", 1000.0)
    assert await store.is_our_send("sent-1")
    await put(store, "m1", "c1")
    (item,) = await store.claim(1000.0, 1, "replica-a", 60)
    await store.failed(item.id, item.generation, "n8n answered 500: \x00\x00", 1005.0, dead=False)
    assert (await store.outbox())[0].last_error is not None and store.write_error is None


# --- fenced claims ----------------------------------------------------------------------------------------------

async def test_a_claim_taken_over_leaves_the_old_holder_unable_to_renew_or_mark(store: Store) -> None:
    """A replica paused past its lease comes back: its renewal, delivered and failed marks (and the payload it
    prepared) change nothing; the item is the new holder's."""
    await put(store, "m1", "c1")
    (old,) = await store.claim(1000.0, 1, "paused", lease=5)
    assert await store.renew_claims("paused", {old.id: old.generation}, 1008.0) == {old.id}  # renewed while alive
    (new,) = await store.claim(1008.0, 1, "survivor", lease=5)  # the renewed lease ran out at 1008
    assert new.id == old.id and new.generation == old.generation + 1
    assert await store.renew_claims("paused", {old.id: old.generation}, 1020.0) == set()
    assert not await store.delivered(old.id, old.generation, 1009.0)
    assert not await store.failed(old.id, old.generation, "late", 1010.0, dead=True, payload={"stale": True})
    (item,) = await store.outbox()
    assert (item.status, item.claimed_by, item.payload) == ("pending", "survivor", None)
    assert await store.delivered(new.id, new.generation, 1009.0)


async def test_items_behind_their_chat_head_wait_and_follow_it_in_order(store: Store) -> None:
    for n in range(3):
        await put(store, f"a{n}", "chat-a")
    head, second, third = await store.outbox()
    assert not head.behind_head and second.behind_head and third.behind_head
    assert second.to_dict()["next_attempt_at"] == second.created_at  # shown as ever: due once its turn comes
    (claimed,) = await store.claim(1000.0, 10, "r", lease=30)
    await store.failed(claimed.id, claimed.generation, "n8n down", 1050.0, dead=True)  # a dead letter lets it go on
    (claimed,) = await store.claim(1050.0, 10, "r", lease=30)
    assert claimed.id == second.id
    assert await store.delivered(claimed.id, claimed.generation, 1051.0)
    assert [i.id for i in await store.claim(1051.0, 10, "r", lease=30)] == [third.id]


async def test_a_head_left_waiting_by_a_concurrent_hand_over_is_made_due(store: Store) -> None:
    """On PostgreSQL a webhook stored while another replica finishes its chat's head can be queued behind a head
    that is gone; the forwarder's periodic repair makes it due."""
    await put(store, "a0", "chat-a")
    await put(store, "a1", "chat-a")
    (head,) = await store.claim(1000.0, 10, "r", lease=30)
    await store._write("UPDATE outbox SET status = 'delivered' WHERE id = ?", (head.id,))  # no hand-over
    assert await store.claim(1001.0, 10, "r", lease=30) == []
    assert await store.unstick_heads(1002.0) == 1
    assert [i.raw["payload"]["value"]["id"] for i in await store.claim(1002.0, 10, "r", lease=30)] == ["a1"]


def test_a_claim_reads_the_due_chat_heads_not_the_whole_backlog(tmp_path: Path) -> None:
    """100,000 messages waiting in 1,000 chats (n8n was down), 500 heads still backing off, 8 claimed by another
    replica: a claim costs what a claim on an empty outbox costs (SQLite's own instruction count, so the test
    does not depend on the machine's speed). It was a GROUP BY over every pending item: ~80 ms per wake."""
    store = SqliteStore(tmp_path / "gateway.sqlite3")
    store._db.executescript(f"""
        WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 99999)
        INSERT INTO inbound (account, message_id, chat_id, author_id, kind, received_at, raw)
        SELECT 1, 'm' || i, 'chat-' || (i % 1000), 7, 'customer', 1000, '{{}}' FROM n;
        INSERT INTO outbox (inbound_id, chat_id, next_attempt_at, created_at)
        SELECT id, chat_id, CASE WHEN id <= 1000 THEN 1000 ELSE {BEHIND_HEAD} END, 1000 FROM inbound;
        UPDATE outbox SET next_attempt_at = 5000 WHERE id <= 500;""")

    def instructions(owner: str) -> tuple[int, list[OutboxItem]]:
        steps = [0]

        def count() -> int:
            steps[0] += 1
            return 0

        store._db.set_progress_handler(count, 100)
        got = asyncio.run(store.claim(1001.0, 8, owner, lease=30))
        store._db.set_progress_handler(None, 100)
        return steps[0] * 100, got

    asyncio.run(store.claim(1000.0, 8, "other", lease=30))
    cost, got = instructions("replica")
    assert len(got) == 8 and all(not i.behind_head and i.id > 500 for i in got)
    assert cost < 20_000, f"{cost} SQLite instructions for one claim"
    asyncio.run(store.close())
