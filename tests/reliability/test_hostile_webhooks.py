"""Hostile webhooks: refused at ingest with 200 to Avito, and never able to stop the outbox for anyone else."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from avito_harness.stack.local import Stack
from tests.gateway.conftest import USER, GatewayHandle, subscribe


def webhook(message_id: str = "0123456789abcdef0123456789abcdef", chat_id: str = "u2i-hostile~chat_1",
            author_id: Any = 555000111, content: Any = None, kind: str = "text", **extra: Any) -> dict[str, Any]:
    """An Avito v3 webhook for our account, as a dict (callers may break any part of it)."""
    return {"id": "evt-1", "version": "v3.0.0", "timestamp": 1760000000, "payload": {"type": "message", "value": {
        "id": message_id, "chat_id": chat_id, "user_id": USER, "author_id": author_id, "created": 1760000000,
        "type": kind, "chat_type": "u2i", "content": {"text": "hi"} if content is None else content, **extra}}}


def _raw(body: dict[str, Any]) -> bytes:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


_TEXT = '{"text":"hi"}'
#: Each one was accepted on the old main and then failed every forwarding pass, blocking all chats.
POISON = {
    "NaN in content": _raw(webhook()).replace(_TEXT.encode(), b'{"text":"hi","x":NaN}'),
    "1e400 in content": _raw(webhook()).replace(_TEXT.encode(), b'{"text":"hi","x":1e400}'),
    "Infinity": _raw(webhook()).replace(_TEXT.encode(), b'{"text":"hi","x":-Infinity}'),
    "voice null": _raw(webhook(kind="voice", content={"voice": None})),
    "image string": _raw(webhook(kind="image", content={"image": "x"})),
    "link string": _raw(webhook(kind="link", content={"link": "x"})),
    "item number": _raw(webhook(kind="item", content={"item": 5})),
    "location list": _raw(webhook(kind="location", content={"location": []})),
    "text not a string": _raw(webhook(content={"text": ["hi"]})),
    "id with newline": _raw(webhook(message_id="abc\ndef")),
    "chat id with newline": _raw(webhook(chat_id="u2i-a\nINFO forged line")),
    "chat id ..": _raw(webhook(chat_id="..")),
}
#: Each one answered Avito 500 and reset the next request on the same keep-alive connection.
ODD_JSON = {
    "10,000-deep nesting": _raw(webhook()).replace(_TEXT.encode(), b'{"text":"hi","x":' + b"[" * 10_000 + b"]" * 10_000 + b"}"),
    "author_id 10**20": _raw(webhook(author_id=100000000000000000000)),
    "lone surrogate": _raw(webhook()).replace(_TEXT.encode(), b'{"text":"\\udfff"}'),
    "300-deep nesting": _raw(webhook()).replace(_TEXT.encode(), b'{"text":"hi","x":' + b"[" * 300 + b"]" * 300 + b"}"),
}


def _rejected(gateway: GatewayHandle) -> list[dict[str, Any]]:
    rejected: list[dict[str, Any]] = gateway.api.get("/api/inbound/rejected").json()["rejected"]
    return rejected


def _one_normal_message_gets_through(gateway: GatewayHandle, sim: Stack, text: str) -> None:
    chat = sim.avito.account(USER)["chats"][1]["id"]
    said = sim.avito.customer_says(USER, chat, text)["message"]["id"]
    flush = gateway.api.post("/api/outbox/flush")
    assert flush.status_code == 200, flush.text
    got = [r for r in sim.n8n.wait_for(1, timeout=10, path="avito") if r["body"]["meta"]["external_message_id"] == said]
    assert len(got) == 1, "the normal message did not reach n8n (once) after the hostile one"
    assert gateway.api.get("/api/outbox", params={"status": "pending"}).json()["items"] == []


@pytest.mark.parametrize("name", list(POISON))
def test_poison_message_is_refused_at_ingest_and_the_outbox_keeps_moving(gateway: GatewayHandle, sim: Stack,
                                                                        name: str) -> None:
    subscribe(gateway)
    answer = httpx.post(gateway.webhook_url(), content=POISON[name], headers={"Content-Type": "application/json"})
    assert (answer.status_code, answer.json()) == (200, {"ok": True})
    assert len(_rejected(gateway)) == 1, "the poison message was not recorded as refused"
    assert gateway.api.get("/api/inbound").json()["messages"] == []
    _one_normal_message_gets_through(gateway, sim, f"после {name}")
    assert httpx.get(f"{gateway.url}/health").status_code == 200


def test_odd_json_gets_200_and_the_connection_stays_usable(gateway: GatewayHandle, sim: Stack) -> None:
    subscribe(gateway)
    with httpx.Client(headers={"Content-Type": "application/json"}) as avito:  # one keep-alive connection
        for name, body in ODD_JSON.items():
            answer = avito.post(gateway.webhook_url(), content=body)
            assert (answer.status_code, answer.json()) == (200, {"ok": True}), name
        chat = sim.avito.chat(USER, sim.avito.account(USER)["chats"][0]["id"])
        customer = next(u["id"] for u in chat["users"] if u["id"] != USER)
        normal = _raw(webhook(message_id="fedcba9876543210fedcba9876543210", chat_id=chat["id"], author_id=customer))
        assert avito.post(gateway.webhook_url(), content=normal).status_code == 200
    reasons = [r["reason"] for r in _rejected(gateway)]
    assert len(reasons) == len(ODD_JSON), reasons
    gateway.api.post("/api/outbox/flush")
    (received,) = sim.n8n.wait_for(1, timeout=10, path="avito")
    assert received["body"]["meta"]["external_message_id"] == "fedcba9876543210fedcba9876543210"


def test_a_stored_item_that_fails_to_forward_counts_as_its_own_attempt(make_gateway: Any, sim: Stack) -> None:
    """An item stored by an older version (before ingest checks) that raises while forwarding: the other chats
    still flow, the item backs off, becomes a dead letter, and flush never answers 500."""
    gateway = make_gateway(outbox_max_attempts=3, outbox_retry_min=1, outbox_retry_max=2, run_forwarder=False)
    subscribe(gateway)
    poison = webhook(kind="voice", content={"voice": None})
    asyncio.run(gateway.services.store.record_inbound(
        account=USER, message_id="0" * 32, chat_id="u2i-poisoned", author_id=555, kind="customer", raw=poison,
        now=sim.clock.now(), forward=True))
    for _ in range(3):
        flush = gateway.api.post("/api/outbox/flush")
        assert flush.status_code == 200, flush.text
        sim.avito.advance(5)
    (dead,) = gateway.api.get("/api/outbox", params={"status": "dead"}).json()["items"]
    assert dead["chat_id"] == "u2i-poisoned" and dead["attempts"] == 3 and "could not forward" in dead["last_error"]
    _one_normal_message_gets_through(gateway, sim, "другой чат")


def test_health_turns_degraded_when_messages_stop_reaching_n8n(make_gateway: Any, sim: Stack) -> None:
    gateway = make_gateway(health_forward_failures=3, health_outbox_max_age=120, outbox_retry_min=1, outbox_retry_max=1)
    subscribe(gateway)
    assert httpx.get(f"{gateway.url}/health").json()["status"] == "healthy"
    sim.n8n.add_fault(route="POST /webhook/avito", status=500, times=None, required=False, name="n8n broken")
    chat = sim.avito.account(USER)["chats"][0]["id"]
    sim.avito.customer_says(USER, chat, "есть кто?")
    for _ in range(3):
        gateway.api.post("/api/outbox/flush")
        sim.avito.advance(2)
    health = httpx.get(f"{gateway.url}/health")
    assert health.status_code == 503 and health.json()["status"] == "degraded"
    assert re.search(r"\b[3-9] forwards to n8n failed in a row", health.json()["reason"]), health.json()
    sim.avito.advance(200)
    assert "arrived 20" in httpx.get(f"{gateway.url}/health").json()["reason"]  # the age is named too
    sim.n8n.clear_faults()
    sim.avito.advance(2)  # past the backoff of an attempt the background worker may have made meanwhile
    gateway.api.post("/api/outbox/flush")
    assert sim.n8n.wait_for(1, timeout=10, path="avito")
    health = httpx.get(f"{gateway.url}/health")
    assert health.status_code == 200 and health.json()["status"] == "healthy", health.text


def test_ids_with_control_characters_never_forge_log_lines(gateway: GatewayHandle, sim: Stack,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    subscribe(gateway)
    forged = webhook(chat_id="u2i-x\n2026-12-01 INFO gateway: forged")
    forged["payload"]["type"] = "message\nFORGED LINE"
    for body in (forged, webhook(message_id="a\r\nFORGED LINE")):
        assert httpx.post(gateway.webhook_url(), content=_raw(body)).status_code == 200
    assert len(_rejected(gateway)) == 2
    for record in caplog.records:
        assert "\n" not in record.getMessage() and "\r" not in record.getMessage(), record.getMessage()


# --- liveness under generated hostile input --------------------------------------------------------------

_junk = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                     lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=5), kids, max_size=3),
                     max_leaves=8)
_ids = st.one_of(st.text(max_size=40), st.from_regex(r"\A[0-9a-f]{32}\Z"), st.sampled_from([".", "..", "a\nb", "\x00"]))
_kinds = st.sampled_from(["text", "image", "voice", "link", "item", "location", "file", "system", "deleted"])


def _hostile_bodies() -> st.SearchStrategy[bytes]:
    structured = st.builds(
        lambda mid, cid, author, kind, content: _raw_loose(webhook(message_id=mid, chat_id=cid, author_id=author,
                                                                     kind=kind, content=content)),
        _ids, _ids, st.one_of(st.integers(min_value=-(2**70), max_value=2**70), st.just(USER), st.just(0)),
        _kinds, st.one_of(st.dictionaries(_kinds, _junk, max_size=2), _junk),
    )
    deep = st.integers(min_value=30, max_value=3000).map(
        lambda n: _raw(webhook()).replace(_TEXT.encode(), b'{"text":"x","d":' + b"[" * n + b"]" * n + b"}"))
    constants = st.sampled_from([b"NaN", b"Infinity", b"-Infinity", b"1e400", b"-1e999", b'"\\ud800"', b'"\\udfff x"'])
    with_constant = constants.map(lambda c: _raw(webhook()).replace(_TEXT.encode(), b'{"text":"hi","v":' + c + b"}"))
    return st.one_of(structured, deep, with_constant, st.binary(max_size=300))


def _raw_loose(body: dict[str, Any]) -> bytes:
    return json.dumps(body, ensure_ascii=False).encode("utf-8", errors="surrogatepass")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(bodies=st.lists(_hostile_bodies(), min_size=1, max_size=5))
def test_generated_hostile_webhooks_then_a_normal_one_still_arrives_once(live_gateway: tuple[GatewayHandle, Stack],
                                                                          bodies: list[bytes]) -> None:
    gateway, sim = live_gateway
    sim.n8n.clear()
    with httpx.Client(headers={"Content-Type": "application/json"}, timeout=2.0) as avito:
        for body in bodies:
            answer = avito.post(gateway.webhook_url(), content=body)  # timeout=2.0: every answer within a bound
            assert answer.status_code == 200 and answer.json() == {"ok": True}
    chat = sim.avito.account(USER)["chats"][2]["id"]
    said = sim.avito.customer_says(USER, chat, "обычное сообщение")["message"]["id"]
    assert gateway.api.post("/api/outbox/flush").status_code == 200
    sim.n8n.wait_for(1, timeout=10, path="avito")
    gateway.api.post("/api/outbox/flush")
    arrived = [r for r in sim.n8n.received("avito") if r["body"]["meta"]["external_message_id"] == said]
    assert len(arrived) == 1, "the normal message did not reach n8n exactly once"
    assert sim.n8n.invalid() == [], "something the gateway forwarded broke the normalized-message contract"


@pytest.fixture
def live_gateway(gateway: GatewayHandle, sim: Stack) -> tuple[GatewayHandle, Stack]:
    subscribe(gateway)
    return gateway, sim
