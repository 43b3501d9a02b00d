"""Every SPEC endpoint through HTTP, the API key, and the Avito error table."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from avito_harness.stack.local import Stack
from tests.gateway.conftest import API_KEY, USER, GatewayHandle, chat_texts, first_chat

API_ROUTES = [
    ("GET", "/api/token"), ("GET", "/api/chats"), ("GET", "/api/chats/u2i-x/messages"),
    ("POST", "/api/messages/send"), ("POST", "/api/messages/send/image"), ("POST", "/api/messages/send/bulk"),
    ("POST", "/api/chats/u2i-x/read"), ("POST", "/api/webhook/subscribe"), ("GET", "/api/webhook/subscriptions"),
    ("GET", "/api/inbound"), ("GET", "/api/inbound/rejected"), ("GET", "/api/outbox"),
    ("POST", "/api/outbox/dead/replay"), ("POST", "/api/outbox/1/replay"), ("POST", "/api/outbox/flush"),
]


def test_every_api_route_is_listed_here(gateway: GatewayHandle) -> None:
    paths = gateway.served.app.openapi()["paths"]
    served = {(m.upper(), p) for p, ops in paths.items() for m in ops if p.startswith("/api")}
    listed = {(m, p.replace("u2i-x", "{chat_id}").replace("/1/", "/{item_id}/")) for m, p in API_ROUTES}
    assert served == listed


@pytest.mark.parametrize(("method", "path"), API_ROUTES)
@pytest.mark.parametrize("key", [None, "wrong-key", API_KEY + "x", ""])
def test_api_routes_need_the_api_key(gateway: GatewayHandle, method: str, path: str, key: str | None) -> None:
    headers = {} if key is None else {"X-API-Key": key}
    response = httpx.request(method, gateway.url + path, headers=headers, json={})
    assert response.status_code == 401
    body = response.json()
    assert body["success"] is False and body["code"] == "unauthorized" and body["error"]


def test_health_info_and_token_need_no_key_but_never_show_the_token(gateway: GatewayHandle, sim: Stack) -> None:
    health = httpx.get(f"{gateway.url}/health")
    assert health.status_code == 200 and health.json()["status"] == "healthy"
    info = httpx.get(f"{gateway.url}/info").json()
    assert (info["rate_limit_requests"], info["rate_limit_window"], info["max_connections"], info["avito_user_id"]) == (
        100, 60, 20, USER)
    token = gateway.api.get("/api/token")
    assert token.status_code == 200
    state = token.json()["token"]
    assert state["obtained"] is True and state["expires_in"] == 86400
    issued = [e for e in sim.avito.journal(path="/token")]
    assert issued and "sim_at_" not in token.text


def test_health_is_503_with_the_reason_when_no_token_can_be_had(make_gateway: Any) -> None:
    gateway = make_gateway(avito_client_secret="wrong-secret")
    health = httpx.get(f"{gateway.url}/health")
    assert health.status_code == 503
    assert health.json()["status"] == "unhealthy" and "token" in health.json()["reason"]


def test_send_answers_like_spec_and_lands_in_the_chat(gateway: GatewayHandle, sim: Stack) -> None:
    chat_id = first_chat(sim)
    response = gateway.api.post("/api/messages/send", json={"chat_id": chat_id, "text": "Здравствуйте! Спасибо за обращение"})
    assert response.status_code == 200
    body = response.json()
    assert body["success"] is True and body["chat_id"] == chat_id and body["message"] == "Message sent"
    assert set(body["response"]) == {"id", "created"}
    assert chat_texts(sim, chat_id)[-1] == "Здравствуйте! Спасибо за обращение"


@pytest.mark.parametrize(
    ("body", "field"),
    [({"text": "hi"}, "chat_id"), ({"chat_id": "u2i-x"}, "text"), ({"chat_id": "u2i-x", "text": ""}, "text"),
     ({"chat_id": "u2i-x", "text": "я" * 1001}, "text"), ({"chat_id": "has space", "text": "x"}, "chat_id")],
)
def test_bad_send_requests_are_400_naming_the_field(gateway: GatewayHandle, body: dict[str, Any], field: str) -> None:
    response = gateway.api.post("/api/messages/send", json=body)
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_request" and field in response.json()["details"]["fields"]


def test_malformed_json_is_400(gateway: GatewayHandle) -> None:
    response = gateway.api.post("/api/messages/send", content=b"{nope", headers={"Content-Type": "application/json"})
    assert response.status_code == 400 and response.json()["success"] is False


def test_unknown_chat_comes_back_as_documented_error(gateway: GatewayHandle) -> None:
    response = gateway.api.post("/api/messages/send", json={"chat_id": "u2i-nope", "text": "hi"})
    assert response.status_code == 404
    body = response.json()
    assert body["error"] == "Avito API Error 404: Chat not found"
    assert body["details"] == {"error": {"code": 404, "message": "Chat not found"}}
    assert body["code"] == "avito_not_found" and body["retryable"] is False


@pytest.mark.parametrize(
    ("preset", "status", "code", "retryable"),
    [
        ("validation_400", 400, "avito_bad_request", False),
        ("tariff_402", 402, "avito_payment_required", False),
        ("chat_not_found_404", 404, "avito_not_found", False),
        ("server_500", 502, "avito_unavailable", True),
        ("unavailable_503", 502, "avito_unavailable", True),
    ],
)
def test_avito_error_classes_map_to_gateway_errors(gateway: GatewayHandle, sim: Stack, preset: str, status: int,
                                                   code: str, retryable: bool) -> None:
    sim.avito.add_fault(preset, route="GET /messenger/v2/accounts/*/chats", times=None)
    response = gateway.api.get("/api/chats")
    assert response.status_code == status
    body = response.json()
    assert (body["success"], body["code"], body["retryable"]) == (False, code, retryable)
    assert body["error"].startswith(f"Avito API Error {sim.avito.faults()[0]['status']}")


def test_persistent_401_and_403_after_a_fresh_token(gateway: GatewayHandle, sim: Stack) -> None:
    sim.avito.add_fault("expired_401", route="GET /messenger/v2/*", times=None)
    first = gateway.api.get("/api/chats")
    assert (first.status_code, first.json()["code"]) == (502, "avito_unauthorized")
    sim.avito.clear_faults()
    sim.avito.add_fault("forbidden_403", route="GET /messenger/v2/*", times=None)
    second = gateway.api.get("/api/chats")
    assert (second.status_code, second.json()["code"]) == (403, "avito_forbidden")


def test_avito_timeout_is_504_retryable(make_gateway: Any, sim: Stack) -> None:
    gateway = make_gateway(connection_timeout=0.3, max_retries=0)
    sim.avito.add_fault("hang", route="GET /messenger/v2/*", times=None)
    response = gateway.api.get("/api/chats")
    assert response.status_code == 504
    assert (response.json()["code"], response.json()["retryable"]) == ("avito_timeout", True)


def test_avito_unreachable_is_502_retryable(make_gateway: Any) -> None:
    gateway = make_gateway(avito_api_base_url="http://127.0.0.1:9", max_retries=0)
    response = gateway.api.get("/api/chats")
    assert response.status_code == 502
    assert response.json()["code"] == "avito_unreachable"


def test_chats_messages_and_read(gateway: GatewayHandle, sim: Stack) -> None:
    chats = gateway.api.get("/api/chats", params={"chat_types": "u2i,u2u"}).json()
    assert chats["success"] is True and len(chats["chats"]) == 4
    chat_id = first_chat(sim)
    sim.avito.customer_says(USER, chat_id, "непрочитанное")
    messages = gateway.api.get(f"/api/chats/{chat_id}/messages").json()
    assert messages["messages"][0]["content"]["text"] == "непрочитанное"
    assert messages["messages"][0]["is_read"] is False
    assert gateway.api.post(f"/api/chats/{chat_id}/read").json()["success"] is True
    assert gateway.api.get(f"/api/chats/{chat_id}/messages").json()["messages"][0]["is_read"] is True


def test_chat_query_parameters_are_validated(gateway: GatewayHandle) -> None:
    for params in ({"limit": 0}, {"limit": 101}, {"offset": 1001}, {"chat_types": "x"}, {"item_ids": "a"}):
        assert gateway.api.get("/api/chats", params=params).status_code == 400


def test_gateway_reads_the_account_id_when_not_configured(make_gateway: Any, sim: Stack) -> None:
    gateway = make_gateway(avito_user_id=None)
    assert gateway.api.get("/api/chats").status_code == 200
    assert sim.avito.journal(path="/core/v1/accounts/self")


def test_unknown_path_is_a_json_404(gateway: GatewayHandle) -> None:
    response = httpx.get(f"{gateway.url}/nothing")
    assert response.status_code == 404 and response.json()["success"] is False
