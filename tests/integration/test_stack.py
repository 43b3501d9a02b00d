"""The stack over real loopback sockets: plugin fixtures, webhooks to the fake n8n, socket-level faults."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from avito_harness.fakes.settings import DEMO_USER_ID
from avito_harness.stack.control_clients import AvitoSim, N8nSim, SimClientError
from avito_harness.stack.local import Stack
from tests.conftest import assert_webhook_envelope

USER = DEMO_USER_ID


@pytest.fixture(autouse=True)
def raw_path(n8n: N8nSim) -> None:
    """Raw Avito webhooks go to their own n8n path: /webhook/avito is for normalized messages only."""
    n8n.register("raw")


def _token(stack: Stack) -> dict[str, str]:
    body = httpx.post(f"{stack.urls['avito']}/token", data={
        "grant_type": "client_credentials", "client_id": "sim-client-id", "client_secret": "sim-client-secret"}).json()
    return {"Authorization": f"Bearer {body['access_token']}"}


def test_services_listen_on_loopback_free_ports(sim: Stack) -> None:
    for url in sim.urls.values():
        assert url.startswith("http://127.0.0.1:") and not url.endswith(":0")
    assert httpx.get(f"{sim.urls['avito']}/_sim/health").json() == {"status": "ok", "service": "avito"}


def test_customer_message_reaches_the_subscribed_receiver_over_http(sim: Stack, avito: AvitoSim, n8n: N8nSim) -> None:
    headers = _token(sim)
    hook = n8n.webhook_url("raw")
    assert httpx.post(f"{sim.urls['avito']}/messenger/v3/webhook", json={"url": hook}, headers=headers).json() == {"ok": True}
    n8n.clear()  # the probe ({}) arrived first
    chat_id = avito.account(USER)["chats"][0]["id"]
    said = avito.customer_says(USER, chat_id, "Аккумулятор на Ладу есть?")
    assert said["deliveries"][0]["status"] == 200
    (received,) = n8n.wait_for(1, timeout=5, path="raw")
    assert_webhook_envelope(received["body"])
    assert received["body"]["payload"]["value"]["content"]["text"] == "Аккумулятор на Ладу есть?"
    assert len(received["headers"]["x-avito-messenger-signature"]) == 64


def test_media_links_are_absolute_urls_of_the_simulator(sim: Stack, avito: AvitoSim) -> None:
    chat_id = avito.account(USER)["chats"][0]["id"]
    image = avito.customer_says(USER, chat_id, type="image")["message"]["content"]["image"]["sizes"]["640x480"]
    assert image.startswith(sim.urls["avito"])
    assert httpx.get(image).headers["content-type"] == "image/png"


def test_dropped_connection_is_a_protocol_error_for_the_client(sim: Stack, avito: AvitoSim) -> None:
    avito.add_fault("dropped", route="GET /core/v1/accounts/self")
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.get(f"{sim.urls['avito']}/core/v1/accounts/self", headers=_token(sim))


def test_hang_lasts_until_the_client_gives_up(sim: Stack, n8n: N8nSim) -> None:
    n8n.add_fault("hang", route="POST /webhook/raw", service="n8n")
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(n8n.webhook_url("raw"), json={"x": 1}, timeout=0.3)
    assert n8n.received() == []


def test_n8n_down_then_back_is_seen_by_avito_retries(sim: Stack, avito: AvitoSim, n8n: N8nSim) -> None:
    headers = _token(sim)
    httpx.post(f"{sim.urls['avito']}/messenger/v3/webhook", json={"url": n8n.webhook_url("raw")}, headers=headers)
    n8n.clear()
    avito.settings(USER, delivery={"retries": 3, "retry_backoff": 30})
    n8n.add_fault(route="POST /webhook/raw", status=503, times=2, service="n8n")
    chat_id = avito.account(USER)["chats"][0]["id"]
    avito.customer_says(USER, chat_id, "вы тут?")
    avito.advance(30)
    avito.advance(60)
    (received,) = n8n.wait_for(1, timeout=5)
    assert received["body"]["payload"]["value"]["content"]["text"] == "вы тут?"
    attempts = [(d["attempt"], d["status"]) for d in avito.deliveries(account=USER)]
    assert attempts == [(1, 503), (2, 503), (3, 200)]


def test_stack_reset_clears_every_fake(sim: Stack, avito: AvitoSim, n8n: N8nSim) -> None:
    avito.create_account()
    httpx.post(n8n.webhook_url("raw"), json={})
    avito.advance(100)
    sim.reset()
    assert len(httpx.get(f"{sim.urls['avito']}/_sim/accounts").json()["accounts"]) == 1
    assert n8n.received() == [] and n8n.journal() == []
    assert avito.clock()["now"] == sim.clock.now()


def test_scenario_export_of_the_whole_stack_replays(sim: Stack, avito: AvitoSim, n8n: N8nSim) -> None:
    avito.add_fault("server_500", route="GET /core/*", required=False)
    n8n.add_fault(route="POST /webhook/*", status=500, required=False)
    avito.settings(USER, rate_limits={"per_minute": 10})
    exported = sim.export_scenario()
    sim.reset()
    sim.load_scenario(exported)
    assert [f["name"] for f in avito.faults()] == ["server_500"]
    assert n8n.faults()[0]["status"] == 500
    assert avito.account(USER)["settings"]["rate_limits"]["per_minute"] == 10
    avito.clear_faults()
    n8n.clear_faults()


def test_client_errors_carry_the_fakes_message(avito: AvitoSim) -> None:
    with pytest.raises(SimClientError, match="Account 5 not found"):
        avito.account(5)


@pytest.mark.sim(scenario={"avito": {"faults": [{"preset": "tariff_402", "route": "GET /core/*"}]}})
def test_sim_marker_loads_a_scenario(sim: Stack) -> None:
    response = httpx.get(f"{sim.urls['avito']}/core/v1/accounts/self", headers=_token(sim))
    assert response.status_code == 402 and response.json()["error"]["code"] == 402


def test_two_accounts_in_one_stack_do_not_share_webhooks(sim: Stack, avito: AvitoSim, n8n: N8nSim) -> None:
    other: dict[str, Any] = avito.create_account(demo_data=True)
    token = httpx.post(f"{sim.urls['avito']}/token", data={"grant_type": "client_credentials",
                       "client_id": other["client_id"], "client_secret": other["client_secret"]}).json()["access_token"]
    httpx.post(f"{sim.urls['avito']}/messenger/v3/webhook", json={"url": n8n.webhook_url("raw")},
               headers={"Authorization": f"Bearer {token}"})
    n8n.clear()
    main_chat = avito.account(USER)["chats"][0]["id"]
    assert avito.customer_says(USER, main_chat, "мимо")["deliveries"] == []
    other_chat = avito.account(other["user_id"])["chats"][0]["id"]
    avito.customer_says(other["user_id"], other_chat, "мне")
    (received,) = n8n.wait_for(1, timeout=5)
    assert received["body"]["payload"]["value"]["user_id"] == other["user_id"]
