"""The gateway under partial failure, with real processes (issue 27): a real PostgreSQL server the test stops,
starts, locks and pauses; two gateway replicas the test pauses (SIGSTOP) and continues (SIGCONT); the fake
Avito and n8n made slow. In every case each idempotency key is posted to Avito at most once (exactly once when
the send finishes), every message reaches n8n once and in its chat's order, nothing is lost. Each test prints
its figures (posts per key, copies and order at n8n, time to recover)."""

from __future__ import annotations

import concurrent.futures
import os
import signal
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from avito_harness.stack import Stack
from tests.conftest import POSTGRES_MISSING, missing
from tests.gateway.conftest import API_KEY, USER, wait_until
from tests.reliability.processes import SECRET, OwnPostgres, Replica, replica_set
from tests.reliability.replicas import webhook

SEND = "POST /messenger/v1/accounts/*/chats/*/messages"


@pytest.fixture(scope="module")
def server() -> Iterator[OwnPostgres]:
    from avito_harness.real.postgres import find_binaries

    if find_binaries() is None:
        missing(POSTGRES_MISSING)
    own = OwnPostgres().start()
    yield own
    own.remove()


@pytest.fixture
def database(server: OwnPostgres) -> str:
    server.start() if not _running(server) else None
    return server.new_database(f"t_{uuid.uuid4().hex[:12]}")


def _running(server: OwnPostgres) -> bool:
    try:
        with psycopg.connect(server.url(), connect_timeout=2):
            return True
    except psycopg.Error:
        return False


def _chat(sim: Stack) -> str:
    return str(sim.avito.create_chat(USER, customer_name="Покупатель")["id"])


def _posts(sim: Stack, chat: str, text: str) -> int:
    return sum(1 for m in sim.avito.chat(USER, chat)["messages"]
               if m["direction"] == "out" and m["content"].get("text") == text)


def _send(url: str, chat: str, text: str, key: str, timeout: float = 60) -> httpx.Response:
    return httpx.post(f"{url}/api/messages/send", json={"chat_id": chat, "text": text}, timeout=timeout,
                      headers={"X-API-Key": API_KEY, "Idempotency-Key": key})


def _in_background(fn: Any, *args: Any) -> concurrent.futures.Future[Any]:
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    future = pool.submit(fn, *args)
    pool.shutdown(wait=False)
    return future


def _at_n8n(sim: Stack, chat: str) -> list[str]:
    return [r["body"]["meta"]["external_message_id"] for r in sim.n8n.received("avito")
            if r["body"]["external_chat_id"] == chat]


def _hook(replica: Replica, body: dict[str, Any], timeout: float = 30) -> httpx.Response:
    return httpx.post(f"{replica.url}/webhook/avito/{SECRET}", json=body, timeout=timeout)


def _arrived(sim: Stack, rule: dict[str, Any]) -> bool:
    """The request ``rule`` slows is at the fake now (the rule fires as it arrives, before its delay)."""
    return any(r["id"] == rule["id"] and r["fired"] for r in sim.avito.faults() + sim.n8n.faults())


def _claimed_by(database: str, message_id: str) -> str | None:
    with psycopg.connect(database, autocommit=True) as db:
        row = db.execute("SELECT o.claimed_by FROM avito_gateway.outbox o JOIN avito_gateway.inbound i"
                         " ON i.id = o.inbound_id WHERE i.message_id = %s", (message_id,)).fetchone()
    return None if row is None else row[0]


def _pause_the_holder(replicas: list[Replica], database: str, chat: str, ids: list[str]) -> tuple[Replica, float]:
    """Pause (SIGSTOP) the replica holding the claim on ``ids[0]``; the rest of ``ids`` arrive at the other one.
    Returns the paused replica and when it was paused."""
    holder = next(r for r in replicas if r.env["REPLICA_ID"] == _claimed_by(database, ids[0]))
    other = next(r for r in replicas if r is not holder)
    holder.pause()
    paused_at = time.monotonic()
    for n, message_id in enumerate(ids[1:], 1):
        assert _hook(other, webhook(message_id, chat, f"#{n}")).status_code == 200
    return holder, paused_at


# --- sends --------------------------------------------------------------------------------------------------------

def test_a_replica_paused_mid_send_never_posts_twice(sim: Stack, database: str, tmp_path: Path) -> None:
    """Replica 1 posts while Avito takes 2 s, and is paused (SIGSTOP) meanwhile; the caller retries the key on
    replica 2, which waits for the claim (it outlasts the post), takes the key over, reads the chat, finds the
    message and answers with it. Replica 1, continued, cannot finish the key any more: one post."""
    chat = _chat(sim)
    slow = sim.avito.add_fault(route=SEND, effect="delay", delay=2.0, times=1)
    with replica_set(sim, database, tmp_path, IDEMPOTENCY_LEASE_SECONDS="2", CONNECTION_TIMEOUT="4") as (one, two):
        first = _in_background(_send, one.url, chat, "пауза посреди отправки", "pause-1")
        wait_until(lambda: _arrived(sim, slow), 10, "the post at Avito")
        one.pause()
        paused_at = time.monotonic()
        retry = _send(two.url, chat, "пауза посреди отправки", "pause-1")
        recovered = time.monotonic() - paused_at
        one.resume()
        original = first.result(timeout=60)
    assert retry.status_code == 200, retry.text
    assert original.status_code == 200, original.text
    assert original.json()["response"]["id"] == retry.json()["response"]["id"]
    assert _posts(sim, chat, "пауза посреди отправки") == 1
    print(f"\npartial: replica paused mid-send: posts for the key 1, both answers the same id; the retry answered "
          f"{recovered:.1f} s after the pause (lease 2 s, post budget 4 + 1 s)")


def test_avito_slower_than_the_lease_the_key_is_renewed_and_posted_once(sim: Stack, database: str,
                                                                        tmp_path: Path) -> None:
    chat = _chat(sim)
    slow = sim.avito.add_fault(route=SEND, effect="delay", delay=3.5, times=1)
    with replica_set(sim, database, tmp_path, IDEMPOTENCY_LEASE_SECONDS="2", CONNECTION_TIMEOUT="5") as (one, two):
        started = time.monotonic()
        first = _in_background(_send, one.url, chat, "медленный Авито", "slow-1")
        wait_until(lambda: _arrived(sim, slow), 10, "the post at Avito")
        second = _send(two.url, chat, "медленный Авито", "slow-1")
        answered = time.monotonic() - started
        one_answer = first.result(timeout=60)
    assert (one_answer.status_code, second.status_code) == (200, 200), (one_answer.text, second.text)
    assert one_answer.json()["response"]["id"] == second.json()["response"]["id"]
    assert second.json()["idempotent_replay"] is True
    assert _posts(sim, chat, "медленный Авито") == 1
    print(f"\npartial: Avito 3.5 s, lease 2 s: posts for the key 1, the second replica answered the same id after "
          f"{answered:.1f} s")


def test_the_database_stopped_mid_send_the_post_is_answered_and_never_repeated(
        sim: Stack, server: OwnPostgres, database: str, tmp_path: Path) -> None:
    """Avito takes 3 s; the database stops during the post and starts again. The caller gets the message id
    (the post landed; its record waits in memory); a retry with the key on the other replica gets the same id."""
    chat = _chat(sim)
    slow = sim.avito.add_fault(route=SEND, effect="delay", delay=3.0, times=1)
    with replica_set(sim, database, tmp_path, IDEMPOTENCY_LEASE_SECONDS="2", CONNECTION_TIMEOUT="5",
                     DATABASE_TIMEOUT="1") as (one, two):
        first = _in_background(_send, one.url, chat, "база упала", "db-1")
        wait_until(lambda: _arrived(sim, slow), 10, "the post at Avito")
        server.stop()
        stopped_at = time.monotonic()
        answer = first.result(timeout=60)
        health = httpx.get(f"{one.url}/health", timeout=10)
        server.start()
        restarted_at = time.monotonic()
        retry = _send(two.url, chat, "база упала", "db-1")

        def healthy() -> bool:
            return all(httpx.get(f"{r.url}/health", timeout=10).status_code == 200 for r in (one, two))
        recovered = wait_until(healthy, 30, "both replicas healthy again")
        with psycopg.connect(database, autocommit=True) as db:
            finished = wait_until(lambda: db.execute("SELECT status FROM avito_gateway.idempotency WHERE key = 'db-1'")
                                  .fetchone() == (200,), 30, "the held answer stored")
    assert answer.status_code == 200, answer.text
    assert (health.status_code, health.json()["status"]) == (503, "unhealthy")
    assert retry.status_code == 200 and retry.json()["response"]["id"] == answer.json()["response"]["id"]
    assert _posts(sim, chat, "база упала") == 1
    print(f"\npartial: database stopped {restarted_at - stopped_at:.1f} s mid-send: posts for the key 1, answer 200 "
          f"during the outage, the retry the same id; healthy {recovered:.1f} s after the restart, the held answer "
          f"stored within {finished:.1f} s more")


# --- forwards -----------------------------------------------------------------------------------------------------

def test_a_replica_paused_before_its_forward_never_posts_it_after_losing_the_claim(
        sim: Stack, database: str, tmp_path: Path) -> None:
    """Replica A claims a chat's first message and reads the chat (Avito takes 3 s); it is paused. B takes the
    claim over once it runs out and forwards all three messages; A, continued, does not post its stale copy:
    n8n gets D0, D1, D2 once each, in order (it got D0, D1, D2, D0)."""
    chat = _chat(sim)
    slow = sim.avito.add_fault(route="GET /messenger/v2/accounts/*/chats/*", effect="delay", delay=3.0, times=1)
    ids = [f"d{n}-{uuid.uuid4().hex[:8]}" for n in range(3)]
    with replica_set(sim, database, tmp_path, OUTBOX_LEASE_SECONDS="2", N8N_TIMEOUT="2",
                     ENRICH_TIMEOUT="10") as replicas:
        assert _hook(replicas[0], webhook(ids[0], chat, "D0")).status_code == 200
        wait_until(lambda: _arrived(sim, slow), 10, "the slow chat read at Avito")
        holder, paused_at = _pause_the_holder(replicas, database, chat, ids)
        wait_until(lambda: len(_at_n8n(sim, chat)) >= 3, 30, "the three at n8n")
        recovered = time.monotonic() - paused_at
        holder.resume()
        # the continued replica acts on what it held: it learns it lost the claim (and says so), or posts it
        wait_until(lambda: "taken over by another replica" in "".join(holder.output) or len(_at_n8n(sim, chat)) > 3,
                   30, "the continued replica finishing its stale delivery")
        got = _at_n8n(sim, chat)
    assert got == ids, got
    print(f"\npartial: replica paused before its forward: n8n got {len(got)} messages, each once, in order; the "
          f"other replica delivered all {recovered:.1f} s after the pause (lease 2 s)")


def test_a_replica_paused_while_n8n_holds_its_post_is_forwarded_again_once_in_order(
        sim: Stack, database: str, tmp_path: Path) -> None:
    """The one case fencing cannot close: n8n had the post when its sender was paused, and nothing tells the
    replica taking over whether it arrived. It is forwarded again, after the claim that covered the post ran
    out, with the same Idempotency-Key (n8n's BAT IN recognises the repeat); the chat's first copies stay in
    order and nothing is lost."""
    chat = _chat(sim)
    slow = sim.n8n.add_fault(route="POST /webhook/avito", effect="delay", delay=1.5, times=1)
    ids = [f"p{n}-{uuid.uuid4().hex[:8]}" for n in range(3)]
    with replica_set(sim, database, tmp_path, OUTBOX_LEASE_SECONDS="2", N8N_TIMEOUT="2") as replicas:
        assert _hook(replicas[0], webhook(ids[0], chat, "P0")).status_code == 200
        wait_until(lambda: _arrived(sim, slow), 10, "the first post at n8n")
        holder, paused_at = _pause_the_holder(replicas, database, chat, ids)
        wait_until(lambda: set(ids) <= set(_at_n8n(sim, chat)), 30, "all three at n8n")
        recovered = time.monotonic() - paused_at
        holder.resume()
        wait_until(lambda: "taken over by another replica" in "".join(holder.output), 30,
                   "the continued replica learning its claim was taken over")
        got = _at_n8n(sim, chat)
        keys = [r["headers"].get("idempotency-key") for r in sim.n8n.received("avito")
                if r["body"]["meta"]["external_message_id"] == ids[0]]
    first_copies = list(dict.fromkeys(got))
    assert first_copies == ids, got
    assert Counter(got)[ids[0]] == 2 and all(Counter(got)[i] == 1 for i in ids[1:]), got
    assert keys == [f"avito-{ids[0]}"] * 2
    print(f"\npartial: replica paused while n8n held its post: the paused message at n8n twice (same "
          f"Idempotency-Key), the others once, first copies in order; all at n8n {recovered:.1f} s after the pause")


def test_a_slow_voice_link_read_keeps_its_claim_and_the_message_reaches_n8n_once(
        sim: Stack, database: str, tmp_path: Path) -> None:
    """No crash: Avito takes 3.5 s for the voice link while the outbox lease is 2 s. The claim is renewed while
    the read runs, so the other replica never forwards the same message."""
    chat = _chat(sim)
    slow = sim.avito.add_fault(route="GET /messenger/v1/accounts/*/getVoiceFiles", effect="delay", delay=3.5, times=1)
    with replica_set(sim, database, tmp_path, OUTBOX_LEASE_SECONDS="2", N8N_TIMEOUT="2") as replicas:
        subscribed = httpx.post(f"{replicas[0].url}/api/webhook/subscribe", headers={"X-API-Key": API_KEY},
                                json={"url": f"{replicas[0].url}/webhook/avito"}, timeout=30)
        assert subscribed.status_code == 200, subscribed.text
        said = sim.avito.customer_says(USER, chat, "перезвоните мне", type="voice")
        wait_until(lambda: _arrived(sim, slow), 10, "the slow voice-link read at Avito")
        holder = next(r for r in replicas if r.env["REPLICA_ID"] == _claimed_by(database, said["message"]["id"]))
        # the slow reader finishes its delivery (it still holds the claim: renewed while it waited)
        wait_until(lambda: "forwarded message" in "".join(holder.output), 30, "the slow reader's forward")
        (received,) = sim.n8n.wait_for(1, timeout=30, path="avito")
        with psycopg.connect(database, autocommit=True) as db:
            wait_until(lambda: db.execute("SELECT COUNT(*) FROM avito_gateway.outbox WHERE status = 'delivered'")
                       .fetchone() == (1,), 10, "the message marked delivered")
        copies = [r for r in sim.n8n.received("avito") if r["body"]["external_chat_id"] == chat]
    assert received["body"]["media"]["has_voice"] and received["body"]["media"]["voice_url"]
    assert len(copies) == 1, [c["body"]["meta"]["external_message_id"] for c in copies]
    assert copies[0]["body"]["meta"]["external_message_id"] == said["message"]["id"]
    print("\npartial: voice link read 3.5 s, outbox lease 2 s: the message at n8n once")


# --- the database stuck ---------------------------------------------------------------------------------------

#: The bound the gateway documents for any call that needs PostgreSQL: DATABASE_TIMEOUT (1 s here) + 1 s; the
#: rest is slack for a machine loaded with other test runs.
BOUND, SLACK = 1 + 1, 2


def _timed(fn: Any) -> tuple[Any, float]:
    started = time.monotonic()
    return fn(), time.monotonic() - started


def _info_while(replica: Replica, waiting: concurrent.futures.Future[Any]) -> httpx.Response:
    """/info asked while a call that waits on the database is under way: it answers first (it never waits on it)."""
    info = httpx.get(f"{replica.url}/info", timeout=10)
    assert not waiting.done(), "/info answered only after the call waiting on the database"
    return info


def test_a_lock_held_past_the_timeout_answers_503_within_the_bound_and_nothing_else_waits(
        sim: Stack, database: str, tmp_path: Path) -> None:
    """Someone holds the inbound table locked (DATABASE_TIMEOUT 1 s), past the webhook's give-up and /health's
    verdict: webhooks answer 503 within the bound (Avito delivers them again), /health says unhealthy within it,
    /info never waits; once the lock is gone, every message reaches n8n once, in order."""
    chat = _chat(sim)
    ids = [f"l{n}-{uuid.uuid4().hex[:8]}" for n in range(3)]
    with replica_set(sim, database, tmp_path, DATABASE_TIMEOUT="1") as (one, _two):
        assert _hook(one, webhook(ids[0], chat, "L0")).status_code == 200
        locker = psycopg.connect(database)
        locker.execute("LOCK TABLE avito_gateway.inbound IN ACCESS EXCLUSIVE MODE")
        locked_at = time.monotonic()
        waiting = _in_background(_timed, lambda: _hook(one, webhook(ids[1], chat, "L1")))
        info = _info_while(one, waiting)
        refused, hook_seconds = waiting.result(timeout=30)
        health, health_seconds = _timed(lambda: httpx.get(f"{one.url}/health", timeout=10))
        held = time.monotonic() - locked_at
        locker.rollback()
        locker.close()
        released_at = time.monotonic()
        for n in (1, 2):  # Avito's redelivery of the refused one, then the next message
            assert _hook(one, webhook(ids[n], chat, f"L{n}")).status_code == 200
        wait_until(lambda: _at_n8n(sim, chat) == ids, 30, "all three at n8n in order")
        recovered = time.monotonic() - released_at
    assert refused.status_code == 503 and refused.json()["code"] == "storage_unavailable"
    assert hook_seconds < BOUND + SLACK, hook_seconds
    assert info.status_code == 200
    assert (health.status_code, health.json()["status"]) == (503, "unhealthy") and health_seconds < BOUND + SLACK
    print(f"\npartial: table locked {held:.1f} s, DATABASE_TIMEOUT 1 s: webhook 503 in {hook_seconds:.2f} s, /info "
          f"answered while it waited, /health unhealthy in {health_seconds:.2f} s; after the lock all 3 at n8n "
          f"once in order within {recovered:.1f} s")


def test_a_paused_database_backend_costs_one_bounded_wait_then_a_fresh_connection(
        sim: Stack, server: OwnPostgres, database: str, tmp_path: Path) -> None:
    """The server process serving the gateway's connection is paused: the call waiting on it gives up after the
    bound (503), the gateway opens a fresh connection, and the next webhook goes through while the old backend
    is still paused; /info never waits."""
    chat = _chat(sim)
    ids = [f"b{n}-{uuid.uuid4().hex[:8]}" for n in range(3)]
    with replica_set(sim, database, tmp_path, count=1, DATABASE_TIMEOUT="1") as (one,):
        assert _hook(one, webhook(ids[0], chat, "B0")).status_code == 200
        backends = server.gateway_backends()
        assert backends
        for pid in backends:
            os.kill(pid, signal.SIGSTOP)
        try:
            paused_at = time.monotonic()
            waiting = _in_background(_timed, lambda: _hook(one, webhook(ids[1], chat, "B1")))
            info = _info_while(one, waiting)
            first, first_seconds = waiting.result(timeout=30)
            again = _hook(one, webhook(ids[1], chat, "B1"))  # Avito's redelivery
            second = _hook(one, webhook(ids[2], chat, "B2"))
            recovered = time.monotonic() - paused_at
        finally:
            for pid in backends:
                os.kill(pid, signal.SIGCONT)
        wait_until(lambda: _at_n8n(sim, chat) == ids, 30, "all three at n8n in order")
    assert first.status_code in (200, 503) and first_seconds < BOUND + SLACK, first_seconds
    assert info.status_code == 200
    assert (again.status_code, second.status_code) == (200, 200)
    print(f"\npartial: database backend paused: the waiting webhook answered {first.status_code} in "
          f"{first_seconds:.2f} s, /info while it waited, webhooks through again {recovered:.1f} s after "
          f"the pause (backend still paused); n8n got the 3 once in order")


def test_health_with_the_database_down_says_unhealthy_and_shows_no_address(
        sim: Stack, server: OwnPostgres, database: str, tmp_path: Path) -> None:
    """Anyone may read /health: with the database down it says unhealthy, and not where the database is. What
    does not need the database goes on (the shared rate limit counts in memory meanwhile)."""
    with replica_set(sim, database, tmp_path, count=1, DATABASE_TIMEOUT="1") as (one,):
        server.stop()
        try:
            health, seconds = _timed(lambda: httpx.get(f"{one.url}/health", timeout=30))
            chats = httpx.get(f"{one.url}/api/chats", headers={"X-API-Key": API_KEY}, timeout=30)
        finally:
            server.start()
    assert chats.status_code == 200 and chats.json()["chats"], chats.text
    body = health.json()
    assert (health.status_code, body["status"], body["checks"]["storage"]) == (503, "unhealthy", False)
    assert "cannot be reached" in body["reason"] and seconds < BOUND + SLACK, (body, seconds)
    for leak in (str(server.root), "5432", "127.0.0.1", "socket", "port"):
        assert leak not in health.text, leak
