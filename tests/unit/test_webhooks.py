"""Webhooks: probe, v3 envelope, echoes, system messages, signature, retries, duplicates, order."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from avito_harness.fakes.avito.webhooks import SIGNATURE_HEADER, sign
from tests.conftest import assert_webhook_envelope
from tests.unit.conftest import USER, first_chat, say

HOOK = "http://127.0.0.1:9/avito-hook"
SUBSCRIBE = "/messenger/v3/webhook"


@pytest.fixture
def subscribed(api: Any, auth: dict[str, str], sink: Any) -> str:
    assert api.post(SUBSCRIBE, json={"url": HOOK}, headers=auth).json() == {"ok": True}
    sink.calls.clear()
    return HOOK


def _settings(api: Any, **delivery: Any) -> None:
    assert api.patch(f"/_sim/accounts/{USER}/settings", json={"delivery": delivery}).status_code == 200


def test_subscribe_probes_with_an_empty_object_then_lists(api: Any, auth: dict[str, str], sink: Any) -> None:
    assert api.post(SUBSCRIBE, json={"url": HOOK}, headers=auth).status_code == 200
    assert json.loads(sink.calls[0].content) == {}
    listed = api.post("/messenger/v1/subscriptions", headers=auth).json()
    assert listed == {"subscriptions": [{"url": HOOK, "version": "3"}]}


@pytest.mark.parametrize("failure", [500, 404, httpx.ConnectError("refused"), httpx.ReadTimeout("slow")])
def test_subscribe_is_refused_when_the_probe_fails(api: Any, auth: dict[str, str], sink: Any, failure: Any) -> None:
    if isinstance(failure, int):
        sink.status = failure
    else:
        sink.error = failure
    response = api.post(SUBSCRIBE, json={"url": HOOK}, headers=auth)
    assert response.status_code == 400
    assert "probe" in response.json()["error"]["message"] or "did not answer" in response.json()["error"]["message"]
    assert api.post("/messenger/v1/subscriptions", headers=auth).json() == {"subscriptions": []}


@pytest.mark.parametrize("url", ["not a url", "ftp://127.0.0.1/x", "http://example.com/hook", "http://10.0.0.1/h"])
def test_subscribe_refuses_bad_or_non_loopback_urls(api: Any, auth: dict[str, str], sink: Any, url: str) -> None:
    response = api.post(SUBSCRIBE, json={"url": url}, headers=auth)
    assert response.status_code == 400
    assert sink.calls == []


def test_unsubscribe_stops_deliveries(api: Any, auth: dict[str, str], sink: Any, subscribed: str) -> None:
    assert api.post("/messenger/v1/webhook/unsubscribe", json={"url": subscribed}, headers=auth).json() == {"ok": True}
    assert api.post("/messenger/v1/subscriptions", headers=auth).json() == {"subscriptions": []}
    say(api, first_chat(api, auth)["id"], "есть кто?")
    assert sink.bodies() == []


def test_customer_message_is_delivered_as_v3_envelope(api: Any, auth: dict[str, str], sink: Any, subscribed: str) -> None:
    chat = first_chat(api, auth)
    result = say(api, chat["id"], "Есть 75 ампер?")
    assert [d["status"] for d in result["deliveries"]] == [200]
    (body,) = sink.bodies()
    assert_webhook_envelope(body)
    value = body["payload"]["value"]
    assert body["version"] == "v3.0.0" and body["payload"]["type"] == "message"
    assert value["chat_id"] == chat["id"] and value["user_id"] == USER
    assert value["author_id"] == result["message"]["author_id"] != USER
    assert value["content"] == {"text": "Есть 75 ампер?"}
    assert value["item_id"] == chat["context"]["value"]["id"] and value["chat_type"] == "u2i"
    assert list(value)[:9] == ["id", "chat_id", "user_id", "author_id", "created", "type", "chat_type", "content", "item_id"]


def test_our_own_send_is_echoed_with_author_equal_to_user(api: Any, auth: dict[str, str], sink: Any, backend: Any, subscribed: str) -> None:
    chat = first_chat(api, auth)
    api.post(f"/messenger/v1/accounts/{USER}/chats/{chat['id']}/messages",
             json={"type": "text", "message": {"text": "Ждём вас"}}, headers=auth)
    backend.dispatcher.wait_for(1, timeout=5)
    (body,) = sink.bodies()
    assert body["payload"]["value"]["author_id"] == body["payload"]["value"]["user_id"] == USER


def test_system_message_has_author_zero(api: Any, auth: dict[str, str], sink: Any, subscribed: str) -> None:
    chat = first_chat(api, auth, "u2u")
    say(api, chat["id"], "[Системное сообщение] Покупатель посмотрел телефон", author="system")
    (body,) = sink.bodies()
    assert body["payload"]["value"]["author_id"] == 0 and body["payload"]["value"]["type"] == "system"
    assert body["payload"]["value"]["item_id"] is None and body["payload"]["value"]["chat_type"] == "u2u"


def test_signature_is_hmac_sha256_of_the_raw_body(api: Any, auth: dict[str, str], sink: Any, subscribed: str) -> None:
    say(api, first_chat(api, auth)["id"], "подпись")
    request = sink.calls[-1]
    assert request.headers[SIGNATURE_HEADER] == sign("sim-client-secret", request.content)
    assert len(request.headers[SIGNATURE_HEADER]) == 64


def test_subscription_secret_keys_the_signature(api: Any, auth: dict[str, str], sink: Any) -> None:
    api.post(SUBSCRIBE, json={"url": HOOK, "secret": "s3cret"}, headers=auth)
    say(api, first_chat(api, auth)["id"], "секрет")
    request = sink.calls[-1]
    assert request.headers[SIGNATURE_HEADER] == sign("s3cret", request.content)


def test_no_retries_by_default_every_attempt_recorded(api: Any, auth: dict[str, str], sink: Any, clock: Any, subscribed: str) -> None:
    sink.status = 500
    result = say(api, first_chat(api, auth)["id"], "потеряется")
    clock.advance(3600)
    deliveries = api.get("/_sim/webhooks/deliveries").json()["deliveries"]
    assert [(d["attempt"], d["status"], d["ok"]) for d in deliveries] == [(1, 500, False)]
    assert deliveries[0]["message_id"] == result["message"]["id"]


def test_retries_follow_backoff_on_the_virtual_clock(api: Any, auth: dict[str, str], sink: Any, clock: Any, subscribed: str) -> None:
    _settings(api, retries=2, retry_backoff=10)
    sink.statuses = [503, 503, 200]
    say(api, first_chat(api, auth)["id"], "повтор")
    assert len(sink.bodies()) == 1
    clock.advance(9)
    assert len(sink.bodies()) == 1
    clock.advance(1)
    assert len(sink.bodies()) == 2
    clock.advance(20)
    assert len(sink.bodies()) == 3
    clock.advance(1000)
    attempts = api.get("/_sim/webhooks/deliveries").json()["deliveries"]
    assert [(d["attempt"], d["status"]) for d in attempts] == [(1, 503), (2, 503), (3, 200)]
    assert len({b["id"] for b in sink.bodies()}) == 1  # the same event each time


def test_connection_errors_are_recorded_and_retried(api: Any, auth: dict[str, str], sink: Any, clock: Any, subscribed: str) -> None:
    _settings(api, retries=1, retry_backoff=5)
    sink.error = httpx.ConnectError("down")
    say(api, first_chat(api, auth)["id"], "связь")
    sink.error = None
    clock.advance(5)
    attempts = api.get("/_sim/webhooks/deliveries").json()["deliveries"]
    assert attempts[0]["status"] is None and "ConnectError" in attempts[0]["error"]
    assert attempts[1]["status"] == 200


@pytest.mark.parametrize("concurrent", [False, True])
def test_duplicate_delivery(api: Any, auth: dict[str, str], sink: Any, backend: Any, subscribed: str, concurrent: bool) -> None:
    _settings(api, duplicates=3, concurrent_duplicates=concurrent)
    say(api, first_chat(api, auth)["id"], "дубль")
    backend.dispatcher.wait_for(3, timeout=5)
    bodies = sink.bodies()
    assert len(bodies) == 3 and len({b["payload"]["value"]["id"] for b in bodies}) == 1
    copies = sorted(d["copy"] for d in api.get("/_sim/webhooks/deliveries").json()["deliveries"])
    assert copies == [1, 2, 3]


def test_jitter_delivers_out_of_order_when_the_clock_moves(api: Any, auth: dict[str, str], sink: Any, clock: Any, subscribed: str) -> None:
    _settings(api, jitter=60)
    chat = first_chat(api, auth)
    texts = [f"сообщение {n}" for n in range(8)]
    for text in texts:
        say(api, chat["id"], text, wait=False)
    assert sink.bodies() == []
    clock.advance(60)
    arrived = [b["payload"]["value"]["content"]["text"] for b in sink.bodies()]
    assert sorted(arrived) == sorted(texts)
    assert arrived != texts  # seeded jitter reorders them


def test_default_delivery_keeps_order_per_subscription(api: Any, auth: dict[str, str], sink: Any, backend: Any, subscribed: str) -> None:
    chat = first_chat(api, auth)
    texts = [f"по порядку {n}" for n in range(10)]
    for text in texts:
        say(api, chat["id"], text, wait=False)
    backend.dispatcher.wait_for(10, timeout=5)
    assert [b["payload"]["value"]["content"]["text"] for b in sink.bodies()] == texts


def test_echo_before_response(api: Any, auth: dict[str, str], sink: Any, subscribed: str) -> None:
    _settings(api, echo_before_response=True)
    chat = first_chat(api, auth)
    sent = api.post(f"/messenger/v1/accounts/{USER}/chats/{chat['id']}/messages",
                    json={"type": "text", "message": {"text": "эхо"}}, headers=auth).json()
    # no waiting: the echo is already there when the send call has returned
    assert [b["payload"]["value"]["id"] for b in sink.bodies()] == [sent["id"]]


def test_signature_can_be_switched_off(api: Any, auth: dict[str, str], sink: Any, subscribed: str) -> None:
    _settings(api, signature=False)
    say(api, first_chat(api, auth)["id"], "без подписи")
    assert SIGNATURE_HEADER not in sink.calls[-1].headers


def test_bad_delivery_settings_are_refused(api: Any) -> None:
    response = api.patch(f"/_sim/accounts/{USER}/settings", json={"delivery": {"duplicates": 0}})
    assert response.status_code == 400
    assert api.patch(f"/_sim/accounts/{USER}/settings", json={"colour": "red"}).status_code == 400
    assert api.patch(f"/_sim/accounts/{USER}/settings", json={"auth_error_status": 418}).status_code == 400
