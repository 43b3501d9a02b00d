"""The reliability matrix: Avito's and n8n's bad days, a killed gateway, bad input, secrets. Each with its numbers."""

from __future__ import annotations

import concurrent.futures
import json
import logging
import random
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from avito_harness.stack.gateway_process import GatewayProcess, free_port
from avito_harness.stack.local import Stack
from tests.gateway.conftest import API_KEY, USER, GatewayHandle, subscribe


def _chats(sim: Stack) -> list[str]:
    return [c["id"] for c in sim.avito.account(USER)["chats"]]


def _parallel(n: int, items: list[Any], fn: Any) -> list[Any]:
    with concurrent.futures.ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(fn, items))


def test_n8n_down_for_an_hour_while_500_messages_arrive(gateway: GatewayHandle, sim: Stack) -> None:
    """500 messages over 4 chats while n8n answers 503 for a virtual hour: all 500 arrive once, in chat order."""
    subscribe(gateway)
    sim.n8n.add_fault(route="POST /webhook/avito", status=503, times=None, required=False, name="n8n down")
    chats = _chats(sim)
    sent: dict[str, list[str]] = {c: [] for c in chats}
    for n in range(500):
        chat = chats[n % len(chats)]
        sent[chat].append(sim.avito.customer_says(USER, chat, f"сообщение {n}")["message"]["id"])
    for _ in range(60):  # an hour, a minute at a time: the outbox keeps retrying the head of each chat
        sim.avito.advance(60)
        gateway.api.post("/api/outbox/flush")
    assert sim.n8n.received("avito") == []
    assert gateway.api.get("/api/outbox", params={"status": "dead"}).json()["items"] == []
    sim.n8n.clear_faults()
    sim.avito.advance(600)
    received = sim.n8n.wait_for(500, timeout=60, path="avito")
    ids = [r["body"]["meta"]["external_message_id"] for r in received]
    assert len(ids) == 500 and len(set(ids)) == 500
    for chat, expected in sent.items():
        assert [r["body"]["meta"]["external_message_id"] for r in received if r["body"]["external_chat_id"] == chat] == expected
    sim.avito.advance(3600)
    gateway.api.post("/api/outbox/flush")
    assert len(sim.n8n.received("avito")) == 500


def test_gateway_killed_with_a_pending_outbox_loses_nothing(sim: Stack, tmp_path: Path) -> None:
    """SIGKILL with 30 messages waiting for n8n; restarted on the same data: 30 delivered, each once."""
    data = str(tmp_path / "gateway-data")

    def gateway_process(port: int) -> GatewayProcess:
        return GatewayProcess(avito_url=sim.urls["avito"], n8n_webhook_url=f"{sim.urls['n8n']}/webhook/avito",
                              client_id="sim-client-id", client_secret="sim-client-secret", user_id=USER,
                              api_key=API_KEY, port=port, data_dir=data,
                              extra_env={"OUTBOX_RETRY_MIN": "0.05", "OUTBOX_RETRY_MAX": "0.2",
                                         "OUTBOX_POLL_INTERVAL": "0.02"})

    port = free_port()
    first = gateway_process(port)
    first.start()
    try:
        first.subscribe()
        sim.n8n.add_fault(route="POST /webhook/avito", status=503, times=None, required=False, name="n8n down")
        chats = _chats(sim)
        ids = [sim.avito.customer_says(USER, chats[n % len(chats)], f"до падения {n}")["message"]["id"] for n in range(30)]
        first.kill()
    finally:
        first.stop()
    sim.n8n.clear_faults()
    second = gateway_process(port)
    second.start()
    try:
        received = sim.n8n.wait_for(30, timeout=30, path="avito")
        threading_settle = httpx.get(f"{second.url}/api/outbox", headers={"X-API-Key": API_KEY},
                                     params={"status": "pending"}).json()["items"]
        assert threading_settle == []
        got = Counter(r["body"]["meta"]["external_message_id"] for r in sim.n8n.received("avito"))
        assert set(got) == set(ids) and set(got.values()) == {1}
        assert len(received) == 30
    finally:
        second.stop()


def test_avito_storm_2000_sends_never_posted_twice(make_gateway: Any, sim: Stack) -> None:
    """2,000 sends with idempotency keys while 30 % of Avito's answers are 5xx, 429 or a dropped connection."""
    gateway = make_gateway(retry_min_wait=0.01, retry_max_wait=0.05, max_retries=3, rate_limit_requests=100_000)
    gateway.api.get("/api/token")
    route = "POST /messenger/v1/accounts/*/chats/*/messages"
    sim.avito.add_fault("server_500", route=route, times=None, probability=0.1, required=False)
    sim.avito.add_fault("rate_limited_429", route=route, times=None, probability=0.1 / 0.9, required=False)
    sim.avito.add_fault("dropped", route=route, times=None, probability=0.1 / 0.8, required=False)
    chat = _chats(sim)[0]

    def send(n: int) -> tuple[int, int]:
        body = {"chat_id": chat, "text": f"storm {n}"}
        first = gateway.api.post("/api/messages/send", json=body, headers={"Idempotency-Key": f"storm-{n}"})
        if first.status_code != 200 and first.json().get("retryable"):  # n8n's retry, same key
            first = gateway.api.post("/api/messages/send", json=body, headers={"Idempotency-Key": f"storm-{n}"})
        return n, first.status_code

    outcomes = dict(_parallel(16, list(range(2000)), send))
    texts = Counter(m["content"].get("text") for m in sim.avito.chat(USER, chat)["messages"])
    posted_twice = [n for n in range(2000) if texts[f"storm {n}"] > 1]
    ok = [n for n, status in outcomes.items() if status == 200]
    assert posted_twice == []
    assert all(texts[f"storm {n}"] == 1 for n in ok)
    faults = {f["name"]: f["fired"] for f in sim.avito.faults()}
    sends = len(sim.avito.journal(method="POST", path="/messenger/v1/accounts/*/chats/*/messages"))
    print(f"storm: {len(ok)}/2000 sent, {2000 - len(ok)} reported failed, faults fired {faults} of {sends} sends")
    assert sum(faults.values()) / sends == pytest.approx(0.3, abs=0.05)
    assert len(ok) >= 1950


def test_token_endpoint_failing_for_a_while(gateway: GatewayHandle, sim: Stack) -> None:
    """Short trouble at /token is absorbed by retries; long trouble is a retryable error; nothing is sent twice."""
    chat = _chats(sim)[0]

    def send(n: int) -> httpx.Response:
        return gateway.api.post("/api/messages/send", json={"chat_id": chat, "text": f"токен {n}"},
                                headers={"Idempotency-Key": f"tok-{n}"})

    sim.avito.add_fault("unavailable_503", route="POST /token", times=2)
    assert send(0).status_code == 200  # two failed token requests, then one that works: the caller never knew
    sim.avito.expire_tokens(USER)
    rule = sim.avito.add_fault("unavailable_503", route="POST /token", times=None, required=False)
    down = [send(n) for n in (1, 2)]
    assert [(a.status_code, a.json()["code"], a.json()["retryable"]) for a in down] == [(502, "avito_unavailable", True)] * 2
    sim.avito.http.delete(f"/_sim/faults/{rule['id']}")
    assert [send(n).status_code for n in range(3)] == [200, 200, 200]  # n8n's retries, same keys
    texts = Counter(m["content"].get("text") for m in sim.avito.chat(USER, chat)["messages"])
    assert [texts[f"токен {n}"] for n in range(3)] == [1, 1, 1]


def test_every_webhook_three_times_concurrently(gateway: GatewayHandle, sim: Stack) -> None:
    subscribe(gateway)
    sim.avito.settings(USER, delivery={"duplicates": 3, "concurrent_duplicates": True})
    chats = _chats(sim)
    for n in range(200):
        sim.avito.customer_says(USER, chats[n % len(chats)], f"трижды {n}")
    attempts = sim.avito.deliveries(account=USER, wait_count=600, timeout=30)
    assert len(attempts) == 600 and all(a["status"] == 200 for a in attempts)
    received = sim.n8n.wait_for(200, timeout=30, path="avito")
    gateway.api.post("/api/outbox/flush")
    assert len(received) == 200 == len(sim.n8n.received("avito"))
    assert len({r["body"]["meta"]["external_message_id"] for r in received}) == 200


# --- bad input ------------------------------------------------------------------------------------------

@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.one_of(st.binary(max_size=2000), st.text(max_size=500).map(str.encode),
                      st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                                   lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4),
                                   max_leaves=20).map(lambda v: json.dumps(v).encode())))
def test_webhook_fuzz_always_200_never_forwarded(webhook_target: tuple[str, Stack], body: bytes) -> None:
    url, sim = webhook_target
    response = httpx.post(url, content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 200 and response.json() == {"ok": True}
    assert sim.n8n.received("avito") == []


@pytest.fixture
def webhook_target(gateway: GatewayHandle, sim: Stack) -> tuple[str, Stack]:
    return gateway.webhook_url(), sim


@pytest.mark.parametrize(("path", "method"), [
    ("/api/chats/..%2F..%2Fetc%2Fpasswd/messages", "GET"), ("/api/chats/%00/read", "POST"),
    ("/api/chats/" + "x" * 5000 + "/messages", "GET"), ("/api//chats", "GET"), ("/api/chats/%ZZ/messages", "GET"),
])
def test_path_tricks_never_5xx(gateway: GatewayHandle, path: str, method: str) -> None:
    response = httpx.request(method, gateway.url + path, headers={"X-API-Key": API_KEY})
    assert response.status_code < 500, response.text


@pytest.mark.parametrize("body", [b'{"chat_id": 5, "text": []}', b'{"chat_id": "u2i-x", "text": "\\ud800"}',
                                  b"[]", b"null", b'{"chat_id": "u2i-x", "text": "' + "я".encode() * 2000 + b'"}'])
def test_wrong_types_and_unicode_never_5xx(gateway: GatewayHandle, body: bytes) -> None:
    response = gateway.api.post("/api/messages/send", content=body, headers={"Content-Type": "application/json"})
    assert 400 <= response.status_code < 500 and response.json()["success"] is False


def test_oversized_bodies_are_refused_early(gateway: GatewayHandle, sim: Stack) -> None:
    huge = b'{"chat_id": "u2i-x", "text": "' + b"a" * (2 * 1024 * 1024) + b'"}'
    response = gateway.api.post("/api/messages/send", content=huge, headers={"Content-Type": "application/json"})
    assert response.status_code == 413 and response.json()["code"] == "body_too_large"

    def chunks() -> Any:
        for _ in range(64):
            yield b"x" * 65536

    streamed = gateway.api.post("/api/messages/send", content=chunks(), headers={"Content-Type": "application/json"})
    assert streamed.status_code == 413
    webhook = httpx.post(gateway.webhook_url(), content=huge, headers={"Content-Type": "application/json"})
    assert webhook.status_code == 200  # Avito always gets its 200 ...
    rejected = gateway.api.get("/api/inbound/rejected").json()["rejected"]
    assert rejected[0]["reason"].startswith("body too large")  # ... and the refusal is on record
    assert sim.n8n.received("avito") == []


# --- security -------------------------------------------------------------------------------------------

def test_tokens_and_secrets_never_appear_in_answers_or_logs(gateway: GatewayHandle, sim: Stack,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    subscribe(gateway)
    chat = _chats(sim)[0]
    sim.avito.customer_says(USER, chat, "проверка секретов")
    sim.n8n.wait_for(1, timeout=10, path="avito")
    answers = [gateway.api.get(p) for p in ("/api/token", "/api/chats", f"/api/chats/{chat}/messages", "/api/inbound",
                                            "/api/outbox", "/api/inbound/rejected")]
    answers += [httpx.get(f"{gateway.url}/health"), httpx.get(f"{gateway.url}/info"),
                gateway.api.post("/api/messages/send", json={"chat_id": chat, "text": "ответ"})]
    secrets = [*sim.avito.tokens(USER), "sim-client-secret", API_KEY]
    assert sim.avito.tokens(USER), "the gateway got tokens"
    for answer in answers:
        for secret in secrets:
            assert secret not in answer.text, f"{answer.request.url.path} shows a secret"
    for record in caplog.records:
        for secret in secrets:
            assert secret not in record.getMessage(), f"log line {record.getMessage()!r} shows a secret"
    received = json.dumps(sim.n8n.received("avito"))
    assert not any(token in received for token in sim.avito.tokens(USER))


def test_webhook_secret_guesses_get_404_and_only_the_secret_gets_in(make_gateway: Any) -> None:
    secret = "s" + "".join(random.Random(1).choice("abcdef0123456789") for _ in range(31))
    gateway = make_gateway(webhook_secret=secret)
    for guess in (secret[:-1] + "x", "x" + secret[1:], secret[:16], secret + "x", ""):
        assert httpx.post(f"{gateway.url}/webhook/avito/{guess}", json={}).status_code == 404
    assert httpx.post(f"{gateway.url}/webhook/avito/{secret}", json={}).status_code == 200
    assert httpx.post(f"{gateway.url}/webhook/avito/{secret}/", json={}).status_code == 404  # no redirect either


def test_image_by_url_refuses_hosts_outside_the_list(gateway: GatewayHandle, sim: Stack) -> None:
    for url in ("http://169.254.169.254/latest/meta-data", "http://10.0.0.1/x.png", "http://example.com/a.png",
                "http://localhost.evil.test/a.png"):
        response = gateway.api.post("/api/messages/send/image", json={"chat_id": _chats(sim)[0], "image_url": url})
        assert (response.status_code, response.json()["code"]) == (403, "image_host_not_allowed"), url


def test_every_api_route_needs_the_key(gateway: GatewayHandle) -> None:
    paths = gateway.served.app.openapi()["paths"]
    routes = [(m.upper(), p) for p, ops in paths.items() if p.startswith("/api/") for m in ops]
    assert len(routes) >= 15
    for method, path in routes:
        url = gateway.url + path.replace("{chat_id}", "u2i-x").replace("{item_id}", "1")
        for headers in ({}, {"X-API-Key": "wrong"}):
            assert httpx.request(method, url, headers=headers, json={}).status_code == 401, (method, path, headers)


