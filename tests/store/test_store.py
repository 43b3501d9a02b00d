"""One store interface, two engines, the same behaviour: what the gateway promises about its state."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

from avito_gateway.errors import StorageError
from avito_gateway.store import Store

ACCOUNT, OTHER = 100000001, 200000002


def webhook(message_id: str, chat_id: str, user_id: int = ACCOUNT) -> dict[str, Any]:
    return {"payload": {"type": "message", "value": {"id": message_id, "chat_id": chat_id, "user_id": user_id}}}


def put(store: Store, message_id: str, chat_id: str, *, account: int = ACCOUNT, now: float = 1000.0) -> bool:
    return store.record_inbound(account=account, message_id=message_id, chat_id=chat_id, author_id=7, kind="customer",
                                raw=webhook(message_id, chat_id, account), now=now, forward=True)


def test_a_redelivered_webhook_is_stored_once_with_one_outbox_item(store: Store) -> None:
    assert put(store, "m1", "c1") is True
    assert put(store, "m1", "c1") is False
    assert put(store, "m1", "c1", account=OTHER) is True  # message ids are unique per account
    assert [i.raw["payload"]["value"]["id"] for i in store.outbox()] == ["m1", "m1"]
    assert store.counts() == {"inbound_customer": 2, "outbox_pending": 2, "rejected": 0}


def test_only_the_oldest_pending_item_of_a_chat_can_be_claimed(store: Store) -> None:
    for n in range(3):
        put(store, f"a{n}", "chat-a")
    put(store, "b0", "chat-b")
    first = store.claim(1000.0, 10, "replica-1", lease=30)
    assert sorted(i.raw["payload"]["value"]["id"] for i in first) == ["a0", "b0"]
    assert store.claim(1000.0, 10, "replica-2", lease=30) == []  # both chats' heads are taken
    head = next(i for i in first if i.chat_id == "chat-a")
    store.delivered(head.id, 1001.0)
    assert [i.raw["payload"]["value"]["id"] for i in store.claim(1001.0, 10, "replica-2", lease=30)] == ["a1"]


def test_two_replicas_claiming_at_once_never_get_the_same_item(open_store: Callable[[], Store]) -> None:
    first, second = open_store(), open_store()
    for n in range(60):
        put(first, f"m{n}", f"chat-{n}")
    got: dict[str, list[int]] = {"r1": [], "r2": []}
    start = threading.Barrier(2)

    def claim_all(store: Store, owner: str) -> None:
        start.wait()
        while batch := store.claim(1000.0, 3, owner, lease=30):
            got[owner] += [i.id for i in batch]

    threads = [threading.Thread(target=claim_all, args=(s, o)) for s, o in ((first, "r1"), (second, "r2"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not set(got["r1"]) & set(got["r2"])
    assert len(got["r1"]) + len(got["r2"]) == 60


def test_a_lapsed_claim_returns_to_the_others_and_a_clean_stop_hands_claims_back(store: Store) -> None:
    put(store, "m1", "c1")
    put(store, "m2", "c2")
    claimed = store.claim(1000.0, 10, "killed", lease=5)
    assert len(claimed) == 2
    assert store.claim(1004.9, 10, "survivor", lease=5) == []
    assert len(store.claim(1005.0, 1, "survivor", lease=5)) == 1  # the lease ran out
    assert store.release_claims("survivor") == 1
    assert len(store.claim(1005.0, 10, "other", lease=5)) == 2


def test_a_failed_attempt_backs_off_and_the_last_one_is_a_dead_letter(store: Store) -> None:
    put(store, "m1", "c1")
    item = store.claim(1000.0, 1, "r1", lease=30)[0]
    store.failed(item.id, "n8n answered 500", next_at=1010.0, dead=False)
    assert store.claim(1009.0, 1, "r1", lease=30) == []
    item = store.claim(1010.0, 1, "r2", lease=30)[0]
    assert (item.attempts, item.last_error) == (1, "n8n answered 500")
    store.failed(item.id, "n8n answered 500", next_at=1020.0, dead=True)
    assert [i.status for i in store.outbox()] == ["dead"]
    assert store.replay(None, 1030.0) == 1
    assert store.claim(1030.0, 1, "r1", lease=30)[0].attempts == 0


def test_an_idempotency_key_is_claimed_once_across_replicas_and_taken_over_after_its_lease(
        open_store: Callable[[], Store]) -> None:
    first, second = open_store(), open_store()
    wins: list[bool] = []
    start = threading.Barrier(8)

    def claim(store: Store) -> None:
        start.wait()
        wins.append(store.claim_idempotency("key-1", "fp", 1000.0, until=1060.0))

    threads = [threading.Thread(target=claim, args=(s,)) for s in [first, second] * 4]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert wins.count(True) == 1
    assert second.claim_idempotency("key-1", "other-request", 1061.0, until=1100.0) is False
    assert second.claim_idempotency("key-1", "fp", 1061.0, until=1100.0) is True  # the first holder died
    second.finish_idempotency("key-1", 200, {"success": True, "id": "x"})
    found = first.idempotency("key-1")
    assert found is not None and (found.status, found.response) == (200, {"success": True, "id": "x"})
    assert first.claim_idempotency("key-1", "fp", 2000.0, until=2060.0) is False  # finished: never run again


def test_the_rate_limit_log_is_shared_by_every_handle(open_store: Callable[[], Store]) -> None:
    first, second = open_store(), open_store()
    taken = [s.take_slots("account:a", 1, 1000.0 + n / 100, limit=5, window=60) for n, s in
             enumerate([first, second] * 4)]
    assert taken[:5] == [None] * 5
    assert taken[5] == pytest.approx(60 - 0.05)  # the oldest slot frees the next place
    assert first.take_slots("account:b", 1, 1000.0, limit=5, window=60) is None  # another account: its own log
    assert second.slots_remaining("account:a", 1000.1, limit=5, window=60) == 0
    assert second.take_slots("account:a", 1, 1060.0, limit=5, window=60) is None


def test_listings_and_replays_are_scoped_to_an_account(store: Store) -> None:
    put(store, "mine", "c1")
    put(store, "theirs", "c2", account=OTHER)
    store.record_rejected("bad", "{}", 1000.0, account=OTHER)
    store.record_rejected("junk", "<", 1000.0)
    assert [r.message_id for r in store.inbound(accounts=[ACCOUNT])] == ["mine"]
    assert [i.chat_id for i in store.outbox(accounts=[OTHER])] == ["c2"]
    assert [r["reason"] for r in store.rejected(accounts=[ACCOUNT])] == ["junk"]
    assert store.counts([OTHER]) == {"inbound_customer": 1, "outbox_pending": 1, "rejected": 2}
    theirs = store.outbox(accounts=[OTHER])[0]
    store.failed(theirs.id, "x", 1000.0, dead=True)
    assert store.replay(theirs.id, 1001.0, accounts=[ACCOUNT]) == 0
    assert store.replay(theirs.id, 1001.0, accounts=[OTHER]) == 1


def test_retention_forgets_delivered_work_and_keeps_what_is_still_owed(store: Store) -> None:
    put(store, "old-delivered", "c1", now=0.0)
    put(store, "old-pending", "c2", now=0.0)
    store.delivered(store.claim(0.0, 10, "r", lease=30)[0].id, 1.0)
    store.record_sent("s1", "c1", "hi", 0.0)
    removed = store.sweep(now=10_000.0, keep_seconds=100, rejected_keep=10)
    assert (removed["outbox"], removed["inbound"], removed["sent"]) == (1, 1, 1)
    assert [i.raw["payload"]["value"]["id"] for i in store.outbox()] == ["old-pending"]
    assert put(store, "old-pending", "c2") is False  # its dedupe key lives as long as the work


def test_meta_once_gives_every_replica_the_same_value(open_store: Callable[[], Store]) -> None:
    first, second = open_store(), open_store()
    assert first.meta_once("webhook_secret:shop", "AAA") == "AAA"
    assert second.meta_once("webhook_secret:shop", "BBB") == "AAA"


def test_a_write_that_fails_is_a_storage_error_remembered_until_a_write_succeeds(store: Store) -> None:
    assert store.writable(1.0) and store.write_error is None
    with pytest.raises(StorageError), store._tx() as db:
        store._exec(db, "INSERT INTO no_such_table VALUES (1)")
    assert store.write_error is not None and "no_such_table" in store.write_error
    assert store.writable(2.0) is False  # a probe alone does not clear it
    put(store, "m1", "c1")
    assert store.write_error is None and store.writable(3.0)


def test_text_with_nul_bytes_is_stored_not_refused(store: Store) -> None:
    """A hostile body with a NUL byte is refused and recorded, never a failed write (which would make Avito
    deliver it again and again); PostgreSQL cannot hold NUL in text, so there it becomes U+FFFD."""
    store.record_rejected("not JSON: a NUL byte", '{"id": "a\x00b"}', 1000.0, ACCOUNT)
    (row,) = store.rejected()
    assert row["body"].replace("\ufffd", "\x00") == '{"id": "a\x00b"}'
    store.record_sent("sent-1", "c1", "привет\x00", 1000.0)
    assert store.is_our_send("sent-1")
    put(store, "m1", "c1")
    (item,) = store.claim(1000.0, 1, "replica-a", 60)
    store.failed(item.id, "n8n answered 500: \x00\x00", 1005.0, dead=False)
    assert store.outbox()[0].last_error is not None and store.write_error is None
