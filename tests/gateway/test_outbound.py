"""Outbound: token single flight and refresh, rate limit, connection cap, never posting twice, image and bulk."""

from __future__ import annotations

import concurrent.futures
from typing import Any

import httpx
import pytest

from avito_gateway.clock import SystemClock
from avito_harness.fakes.avito.media import png_bytes
from avito_harness.stack.local import Stack
from tests.gateway.conftest import USER, GatewayHandle, chat_texts, first_chat, subscribe


def _tokens_issued(sim: Stack) -> int:
    return len([e for e in sim.avito.journal(path="/token") if e["status"] == 200])


def _parallel(n: int, fn: Any) -> list[Any]:
    with concurrent.futures.ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(fn, range(n)))


def test_one_token_request_however_many_calls_wait(gateway: GatewayHandle, sim: Stack) -> None:
    codes = _parallel(20, lambda _: gateway.api.get("/api/chats").status_code)
    assert codes == [200] * 20
    assert _tokens_issued(sim) == 1


def test_token_is_refreshed_before_it_expires(gateway: GatewayHandle, sim: Stack) -> None:
    gateway.api.get("/api/chats")
    sim.avito.advance(86400 - 301)
    gateway.api.get("/api/chats")
    assert _tokens_issued(sim) == 1
    sim.avito.advance(2)  # now inside the 300 s margin
    gateway.api.get("/api/chats")
    assert _tokens_issued(sim) == 2
    assert all(e["status"] == 200 for e in sim.avito.journal(path="/messenger/*"))


@pytest.mark.parametrize("status", [401, 403])
def test_expired_token_is_refreshed_and_the_call_replayed_once(gateway: GatewayHandle, sim: Stack, status: int) -> None:
    sim.avito.settings(USER, auth_error_status=status)
    gateway.api.get("/api/chats")
    sim.avito.expire_tokens(USER)
    chat_id = first_chat(sim)
    response = gateway.api.post("/api/messages/send", json={"chat_id": chat_id, "text": "после истечения"})
    assert response.status_code == 200
    assert _tokens_issued(sim) == 2
    sends = sim.avito.journal(method="POST", path="/messenger/v1/*")
    assert [e["status"] for e in sends] == [status, 200]
    assert chat_texts(sim, chat_id).count("после истечения") == 1


def test_rate_limit_is_exact_and_answers_429_with_retry_after(make_gateway: Any, sim: Stack) -> None:
    gateway = make_gateway(rate_limit_requests=5, rate_limit_window=60)
    sim.avito.advance(0)
    codes = [gateway.api.get("/api/chats").status_code for _ in range(5)]
    sim.avito.advance(30)
    refused = gateway.api.get("/api/chats")
    assert codes == [200] * 5 and refused.status_code == 429
    assert refused.json() == {"success": False, "error": "Rate limit exceeded, try again later", "code": "rate_limited",
                              "retryable": True, "retry_after": 30}
    assert refused.headers["Retry-After"] == "30"
    sim.avito.advance(29)
    assert gateway.api.get("/api/chats").status_code == 429
    sim.avito.advance(1)
    assert gateway.api.get("/api/chats").status_code == 200


def most_at_once(requests: list[dict[str, Any]]) -> int:
    """The most requests the fake had under way at one moment (from arrival time and duration in its journal)."""
    edges = sorted([(r["seen_at"], 1) for r in requests] + [(r["seen_at"] + r["duration_ms"] / 1000, -1) for r in requests],
                   key=lambda e: (e[0], e[1]))
    most = current = 0
    for _, step in edges:
        current += step
        most = max(most, current)
    return most


def test_never_more_than_max_connections_to_avito(make_gateway: Any, sim: Stack) -> None:
    gateway = make_gateway(max_connections=3)
    gateway.api.get("/api/chats")  # token first
    sim.avito.add_fault(effect="delay", delay=0.2, route="GET /messenger/v2/*", times=None)
    codes = _parallel(12, lambda _: gateway.api.get("/api/chats").status_code)
    assert codes == [200] * 12
    assert most_at_once(sim.avito.journal(method="GET", path="/messenger/v2/*")) == 3  # as the fake Avito saw them


def test_avito_429_with_retry_after_is_waited_out_and_retried(gateway: GatewayHandle, sim: Stack) -> None:
    sim.avito.add_fault("rate_limited_429_retry_after", route="POST /messenger/v1/*")
    before = sim.clock.now()
    chat_id = first_chat(sim)
    response = gateway.api.post("/api/messages/send", json={"chat_id": chat_id, "text": "после паузы"})
    assert response.status_code == 200
    assert sim.clock.now() - before >= 30  # waited Avito's Retry-After on the virtual clock
    assert chat_texts(sim, chat_id).count("после паузы") == 1


def test_avito_429_without_retry_after_backs_off_then_gives_up_with_the_error(make_gateway: Any, sim: Stack) -> None:
    gateway = make_gateway(max_retries=2)
    sim.avito.add_fault("rate_limited_429", route="GET /messenger/v2/*", times=None)
    response = gateway.api.get("/api/chats")
    assert response.status_code == 429
    assert (response.json()["code"], response.json()["retryable"]) == ("avito_rate_limited", True)
    assert len(sim.avito.journal(path="/messenger/v2/*")) == 3


def test_too_long_retry_after_is_passed_to_the_caller(gateway: GatewayHandle, sim: Stack) -> None:
    sim.avito.add_fault("rate_limited_429", route="GET /messenger/v2/*", headers={"Retry-After": "3600"})
    response = gateway.api.get("/api/chats")
    assert response.status_code == 429 and response.json()["retry_after"] == 3600


def test_reads_are_retried_on_5xx(gateway: GatewayHandle, sim: Stack) -> None:
    sim.avito.add_fault("unavailable_503", route="GET /messenger/v2/*", times=2)
    assert gateway.api.get("/api/chats").status_code == 200


# --- never posted twice ---------------------------------------------------------------------------

def test_idempotency_key_repeat_returns_the_first_answer(gateway: GatewayHandle, sim: Stack) -> None:
    chat_id = first_chat(sim)
    body = {"chat_id": chat_id, "text": "один раз"}
    first = gateway.api.post("/api/messages/send", json=body, headers={"Idempotency-Key": "bat-out-1"})
    again = gateway.api.post("/api/messages/send", json=body, headers={"Idempotency-Key": "bat-out-1"})
    assert first.status_code == again.status_code == 200
    assert again.json()["response"] == first.json()["response"] and again.json()["idempotent_replay"] is True
    assert chat_texts(sim, chat_id).count("один раз") == 1


def test_concurrent_repeats_with_one_key_post_once(gateway: GatewayHandle, sim: Stack) -> None:
    chat_id = first_chat(sim)
    body = {"chat_id": chat_id, "text": "параллельно"}
    answers = _parallel(8, lambda _: gateway.api.post("/api/messages/send", json=body,
                                                      headers={"Idempotency-Key": "same"}).json())
    assert len({a["response"]["id"] for a in answers}) == 1
    assert chat_texts(sim, chat_id).count("параллельно") == 1


def test_key_reused_for_a_different_request_is_refused(gateway: GatewayHandle, sim: Stack) -> None:
    chat_id = first_chat(sim)
    gateway.api.post("/api/messages/send", json={"chat_id": chat_id, "text": "a"}, headers={"Idempotency-Key": "k"})
    clash = gateway.api.post("/api/messages/send", json={"chat_id": chat_id, "text": "b"}, headers={"Idempotency-Key": "k"})
    assert clash.status_code == 422 and clash.json()["code"] == "idempotency_key_reused"


def test_answer_lost_after_avito_posted_is_not_sent_again(gateway: GatewayHandle, sim: Stack) -> None:
    sim.avito.add_fault("answer_lost", route="POST /messenger/v1/accounts/*/chats/*/messages")
    chat_id = first_chat(sim)
    response = gateway.api.post("/api/messages/send", json={"chat_id": chat_id, "text": "дошло или нет"})
    assert response.status_code == 200
    assert chat_texts(sim, chat_id).count("дошло или нет") == 1
    assert len(sim.avito.journal(method="POST", path="/messenger/v1/*")) == 1


def test_a_lost_answer_is_recognised_when_avitos_clock_is_not_ours(make_gateway: Any, sim: Stack) -> None:
    """Avito's timestamps are compared with Avito's, never with the gateway's clock: the fake's clock stands a year
    back here, as a real one may stand minutes off."""
    gateway = make_gateway(clock=SystemClock())
    sim.avito.add_fault("answer_lost", route="POST /messenger/v1/accounts/*/chats/*/messages")
    chat_id = first_chat(sim)
    assert gateway.api.post("/api/messages/send", json={"chat_id": chat_id, "text": "часы врут"}).status_code == 200
    assert chat_texts(sim, chat_id).count("часы врут") == 1


def test_the_sellers_identical_reply_is_not_taken_for_our_send(gateway: GatewayHandle, sim: Stack) -> None:
    subscribe(gateway)
    chat_id = first_chat(sim)
    sim.avito.customer_says(USER, chat_id, "Да, есть", author="account")  # typed in the Avito app
    sim.avito.deliveries(account=USER, wait_count=1)
    sim.avito.add_fault("dropped", route="POST /messenger/v1/accounts/*/chats/*/messages")
    assert gateway.api.post("/api/messages/send", json={"chat_id": chat_id, "text": "Да, есть"}).status_code == 200
    assert chat_texts(sim, chat_id).count("Да, есть") == 2  # the seller's, then ours


@pytest.mark.parametrize("preset", ["dropped", "unavailable_503", "server_500"])
def test_send_that_did_not_land_is_sent_again_once(gateway: GatewayHandle, sim: Stack, preset: str) -> None:
    sim.avito.add_fault(preset, route="POST /messenger/v1/accounts/*/chats/*/messages")
    chat_id = first_chat(sim)
    response = gateway.api.post("/api/messages/send", json={"chat_id": chat_id, "text": "со второго раза"})
    assert response.status_code == 200
    assert chat_texts(sim, chat_id).count("со второго раза") == 1


def test_upstream_timeout_then_client_retry_with_key_posts_once(make_gateway: Any, sim: Stack) -> None:
    gateway = make_gateway(connection_timeout=0.3, max_retries=0)
    sim.avito.add_fault("hang", route="POST /messenger/v1/accounts/*/chats/*/messages")
    chat_id = first_chat(sim)
    body = {"chat_id": chat_id, "text": "таймаут"}
    first = gateway.api.post("/api/messages/send", json=body, headers={"Idempotency-Key": "n8n-try"})
    assert first.status_code == 504 and first.json()["retryable"] is True
    second = gateway.api.post("/api/messages/send", json=body, headers={"Idempotency-Key": "n8n-try"})
    assert second.status_code == 200
    assert chat_texts(sim, chat_id).count("таймаут") == 1


# --- images and bulk ------------------------------------------------------------------------------

def test_image_send_as_multipart_upload(gateway: GatewayHandle, sim: Stack) -> None:
    chat_id = first_chat(sim)
    response = gateway.api.post("/api/messages/send/image", data={"chat_id": chat_id},
                                files={"file": ("promo.png", png_bytes("promo", 64, 64), "image/png")})
    assert response.status_code == 200, response.text
    assert response.json()["message"] == "Image sent" and response.json()["response"]["image_id"]
    assert sim.avito.chat(USER, chat_id)["messages"][-1]["type"] == "image"


def test_image_send_by_url_from_an_allowed_host(gateway: GatewayHandle, sim: Stack) -> None:
    chat_id = first_chat(sim)
    url = f"{sim.urls['avito']}/media/images/promo/640x480.png"
    response = gateway.api.post("/api/messages/send/image", json={"chat_id": chat_id, "image_url": url})
    assert response.status_code == 200, response.text
    assert sim.avito.chat(USER, chat_id)["messages"][-1]["type"] == "image"


@pytest.mark.parametrize(
    ("overrides", "url", "status", "code"),
    [
        ({}, "http://example.com/a.png", 403, "image_host_not_allowed"),
        ({"image_url_allowed_hosts": ()}, "SIM/media/images/x/32x32.png", 403, "image_host_not_allowed"),
        ({"image_url_max_bytes": 100}, "SIM/media/images/x/640x480.png", 413, "image_too_large"),
        ({}, "SIM/media/images/x/7x7.png", 502, "image_fetch_failed"),
        ({}, "not-a-url", 400, "invalid_request"),
    ],
)
def test_image_url_refusals(make_gateway: Any, sim: Stack, overrides: dict[str, Any], url: str, status: int,
                            code: str) -> None:
    gateway = make_gateway(**overrides)
    response = gateway.api.post("/api/messages/send/image",
                                json={"chat_id": first_chat(sim), "image_url": url.replace("SIM", sim.urls["avito"])})
    assert (response.status_code, response.json()["code"]) == (status, code)


def test_image_send_needs_chat_and_file(gateway: GatewayHandle) -> None:
    assert gateway.api.post("/api/messages/send/image", data={"chat_id": "x"}, files={"other": ("a", b"x")}).status_code == 400
    assert gateway.api.post("/api/messages/send/image", json={"image_url": "http://127.0.0.1/x"}).status_code == 400


def test_bulk_reports_each_chat_and_partial_failure(gateway: GatewayHandle, sim: Stack) -> None:
    chats = [c["id"] for c in sim.avito.account(USER)["chats"][:3]]
    response = gateway.api.post("/api/messages/send/bulk", json={"chat_ids": [*chats, "u2i-nope"], "text": "Акция!"})
    assert response.status_code == 200
    body = response.json()
    assert (body["success"], body["total"], body["sent"], body["failed"]) == (False, 4, 3, 1)
    assert [r["chat_id"] for r in body["results"]] == [*chats, "u2i-nope"]
    assert body["results"][3]["code"] == "avito_not_found"
    for chat_id in chats:
        assert chat_texts(sim, chat_id)[-1] == "Акция!"


def test_bulk_with_per_chat_texts_and_bounded_concurrency(make_gateway: Any, sim: Stack) -> None:
    gateway = make_gateway(bulk_concurrency=2)
    gateway.api.get("/api/token")
    sim.avito.add_fault(effect="delay", delay=0.1, route="POST /messenger/v1/*", times=None)
    chats = [c["id"] for c in sim.avito.account(USER)["chats"]]
    body = {"messages": [{"chat_id": c, "text": f"для {n}"} for n, c in enumerate(chats)]}
    result = gateway.api.post("/api/messages/send/bulk", json=body).json()
    assert result["success"] is True and result["sent"] == len(chats)
    assert len(chats) >= 3
    assert most_at_once(sim.avito.journal(method="POST", path="/messenger/v1/accounts/*/chats/*/messages")) == 2


def test_bulk_items_over_the_rate_limit_fail_individually(make_gateway: Any, sim: Stack) -> None:
    gateway = make_gateway(rate_limit_requests=2)
    chats = [c["id"] for c in sim.avito.account(USER)["chats"][:3]]
    result = gateway.api.post("/api/messages/send/bulk", json={"chat_ids": chats, "text": "x"}).json()
    assert (result["sent"], result["failed"]) == (2, 1)
    assert [r.get("code") for r in result["results"] if not r["success"]] == ["rate_limited"]


@pytest.mark.parametrize("body", [{}, {"chat_ids": []}, {"chat_ids": ["a"]}, {"text": "x"}, {"messages": []}])
def test_bad_bulk_requests(gateway: GatewayHandle, body: dict[str, Any]) -> None:
    assert gateway.api.post("/api/messages/send/bulk", json=body).status_code == 400


def test_subscribe_through_the_gateway_passes_avitos_probe(gateway: GatewayHandle, sim: Stack) -> None:
    response = gateway.api.post("/api/webhook/subscribe", json={"url": gateway.webhook_url(), "version": 2})
    assert response.status_code == 200 and response.json()["success"] is True
    listed = gateway.api.get("/api/webhook/subscriptions").json()["subscriptions"]
    assert listed == [{"url": f"{gateway.url}/webhook/avito/***", "version": "3"}]  # the secret is not shown
    assert gateway.api.post("/api/webhook/subscribe", json={}).status_code == 400
    unreachable = gateway.api.post("/api/webhook/subscribe", json={"url": "http://127.0.0.1:9/hook"})
    assert unreachable.status_code == 400 and "did not answer" in unreachable.json()["error"]
    assert httpx.get(f"{gateway.url}/health").status_code == 200
