"""The whole loop in-process: fake Avito -> gateway -> fake n8n flows -> gateway -> fake Avito, one virtual clock."""

from __future__ import annotations

from typing import Any

import pytest

from avito_harness.stack.local import Stack
from tests.gateway.conftest import API_KEY, USER, GatewayHandle, chat_texts, first_chat, subscribe


@pytest.fixture
def loop(gateway: GatewayHandle, sim: Stack) -> GatewayHandle:
    """Flows on, BAT OUT pointed at the gateway, the gateway subscribed to Avito's webhooks."""
    sim.n8n.flows(mode="flows", gateway_url=gateway.url, gateway_api_key=API_KEY)
    subscribe(gateway)
    return gateway


def _customer(sim: Stack, chat_id: str, text: str | None = None, **fields: Any) -> None:
    count = len(sim.n8n.events("batched"))
    sim.avito.customer_says(USER, chat_id, text, **fields)
    sim.n8n.wait_event("batched", count + 1, timeout=10)


def test_text_image_and_voice_become_one_appeal_answered_in_the_chat(loop: GatewayHandle, sim: Stack) -> None:
    chat_id = first_chat(sim)
    _customer(sim, chat_id, "Здравствуйте! Нужен аккумулятор")
    _customer(sim, chat_id, type="image")
    _customer(sim, chat_id, "на шестьдесят ампер", type="voice")
    assert sim.n8n.appeals() == []  # the batch window is still open
    sim.avito.advance(30)
    (sent,) = sim.n8n.wait_event("sent", timeout=10)
    (appeal,) = sim.n8n.appeals()
    detail = sim.n8n.appeal(appeal["id"])
    (batch,) = detail["batches"]
    assert [m["meta"]["original_media_type"] for m in batch["messages"]] == ["text", "image", "voice"]
    assert batch["messages"][2]["media"]["voice_transcribed_text"] == "на шестьдесят ампер"
    assert batch["text"] == "Здравствуйте! Нужен аккумулятор\nна шестьдесят ампер"
    (row,) = detail["history"]
    assert (row["message_type"], row["channel"], row["status"]) == ("ai", "avito", "sent")
    assert row["external_message_id"] == sent["data"]["message_id"]
    assert appeal["status"] == "answered" and appeal["external_chat_id"] == chat_id
    assert chat_texts(sim, chat_id)[-1] == row["text"] and "Подберём аккумулятор" in row["text"]


def test_window_closes_only_on_the_virtual_clock(loop: GatewayHandle, sim: Stack) -> None:
    _customer(sim, first_chat(sim), "Ещё продаёте?")
    sim.avito.advance(29)
    assert sim.n8n.events("appeal_created") == []
    sim.avito.advance(1)
    assert sim.n8n.wait_event("sent", timeout=10)


def test_message_after_the_window_opens_a_new_batch_on_the_same_appeal(loop: GatewayHandle, sim: Stack) -> None:
    chat_id = first_chat(sim)
    _customer(sim, chat_id, "первый вопрос")
    sim.avito.advance(30)
    sim.n8n.wait_event("sent", timeout=10)
    _customer(sim, chat_id, "а гарантия какая?")
    sim.avito.advance(30)
    sim.n8n.wait_event("sent", 2, timeout=10)
    (appeal,) = sim.n8n.appeals()
    assert appeal["batches"] == 2 and len(sim.n8n.history()) == 2
    assert "Гарантия" in chat_texts(sim, chat_id)[-1]


def test_two_clients_never_share_a_batch_or_an_appeal(loop: GatewayHandle, sim: Stack) -> None:
    chats = [c["id"] for c in sim.avito.account(USER)["chats"][:2]]
    _customer(sim, chats[0], "от первого")
    _customer(sim, chats[1], "от второго")
    sim.avito.advance(30)
    sim.n8n.wait_event("sent", 2, timeout=10)
    appeals = sim.n8n.appeals()
    assert len(appeals) == 2 and {a["external_chat_id"] for a in appeals} == set(chats)
    for appeal in appeals:
        (batch,) = sim.n8n.appeal(appeal["id"])["batches"]
        assert {m["external_user_id"] for m in batch["messages"]} == {appeal["external_user_id"]}
        assert chat_texts(sim, appeal["external_chat_id"])[-1].startswith("Здравствуйте")


def test_operator_mode_waits_for_the_operators_answer(loop: GatewayHandle, sim: Stack) -> None:
    sim.n8n.flows(operator_mode=True)
    chat_id = first_chat(sim)
    _customer(sim, chat_id, "позовите человека")
    sim.avito.advance(30)
    sim.n8n.wait_event("waiting_operator", timeout=10)
    (appeal,) = sim.n8n.appeals()
    assert appeal["status"] == "waiting_operator" and sim.n8n.history() == []
    result = sim.n8n.answer(appeal["id"], "Добрый день, я оператор Анна. Чем помочь?")
    assert result["success"] is True
    assert chat_texts(sim, chat_id)[-1] == "Добрый день, я оператор Анна. Чем помочь?"
    assert sim.n8n.history()[0]["message_type"] == "operator"


def test_only_avito_appeals_reach_the_gateway(loop: GatewayHandle, sim: Stack) -> None:
    for channel in ("telegram", "vk", "whatsapp", "max"):
        sim.n8n.inject({**_normalized(channel), "channel": channel})
    sim.avito.advance(30)
    sim.n8n.wait_event("stub_sent", 4, timeout=10)
    assert {s["channel"] for s in sim.n8n.stubs()} == {"telegram", "vk", "whatsapp", "max"}
    assert sim.avito.journal(method="POST", path="/messenger/v1/*") == []
    assert loop.api.get("/api/inbound").json()["messages"] == []
    assert {h["channel"] for h in sim.n8n.history()} == {"telegram", "vk", "whatsapp", "max"}


def test_bat_out_retries_never_post_twice(loop: GatewayHandle, sim: Stack) -> None:
    # BAT OUT gives up after 0.5 s while Avito takes 2 s; with 10 retries some retry is always waiting (on the
    # gateway's per-key lock) when the first send lands, whatever the machine's speed
    sim.n8n.flows(gateway_timeout=0.5, gateway_retries=10)
    sim.avito.add_fault(effect="delay", delay=2.0, route="POST /messenger/v1/accounts/*/chats/*/messages")
    chat_id = first_chat(sim)
    _customer(sim, chat_id, "Ещё продаёте?")
    sim.avito.advance(30)
    (sent,) = sim.n8n.wait_event("sent", timeout=15)
    assert sent["data"]["attempts"] >= 2  # BAT OUT gave up waiting and retried with the same key
    (row,) = sim.n8n.history()
    assert chat_texts(sim, chat_id).count(row["text"]) == 1
    assert len(sim.avito.journal(method="POST", path="/messenger/v1/accounts/*/chats/*/messages")) == 1


def test_a_gateway_error_is_recorded_in_history(loop: GatewayHandle, sim: Stack) -> None:
    sim.avito.add_fault("forbidden_403", route="POST /messenger/v1/accounts/*/chats/*/messages", times=2)
    _customer(sim, first_chat(sim), "Ещё продаёте?")
    sim.avito.advance(30)
    (failed,) = sim.n8n.wait_event("send_failed", timeout=10)
    (row,) = sim.n8n.history()
    assert (row["status"], row["error"]) == ("failed", "Avito API Error 403: Forbidden")
    assert sim.n8n.appeals()[0]["status"] == "failed" and failed["data"]["error"] == row["error"]


def test_stt_failure_keeps_the_message_and_answers(loop: GatewayHandle, sim: Stack) -> None:
    sim.stt.add_fault(route="POST /v1/audio/transcriptions", status=500)
    _customer(sim, first_chat(sim), "слова", type="voice")
    (problem,) = sim.n8n.events("transcription_failed")
    assert "transcription answered 500" in problem["data"]["reason"]
    sim.avito.advance(30)
    assert sim.n8n.wait_event("sent", timeout=10)


def test_slow_voice_download_is_given_up_and_reported(loop: GatewayHandle, sim: Stack) -> None:
    sim.n8n.flows(download_timeout=0.3)
    sim.avito.add_fault(effect="delay", delay=1.0, route="GET /media/voice/*")
    _customer(sim, first_chat(sim), "медленно", type="voice")
    (problem,) = sim.n8n.events("transcription_failed")
    assert problem["data"]["reason"] == "voice download failed: ReadTimeout"


def test_invalid_message_at_n8n_is_recorded_as_rejected(loop: GatewayHandle, sim: Stack) -> None:
    sim.n8n.inject({"channel": "avito", "text": "без остального"})
    (rejected,) = sim.n8n.rejected()
    assert "external_user_id" in rejected["reason"] or "required" in rejected["reason"]


def test_unknown_client_with_no_default_tenant_is_rejected_not_lost(loop: GatewayHandle, sim: Stack) -> None:
    sim.n8n.flows(default_tenant=None, tenant_mapping={})
    sim.avito.customer_says(USER, first_chat(sim), "кто я")
    sim.n8n.wait_event("rejected", timeout=10)
    assert sim.n8n.rejected()[0]["reason"].startswith("no tenant for avito:")


def _normalized(channel: str) -> dict[str, Any]:
    return {
        "channel": channel, "external_user_id": f"{channel}-user", "external_chat_id": f"{channel}-chat-1",
        "text": "Здравствуйте", "timestamp": "2025-12-01T12:00:00", "client_phone": None, "client_name": "Гость",
        "client_email": None,
        "media": {"has_voice": False, "voice_url": None, "voice_transcribed_text": None, "has_images": False,
                  "images": [], "has_video": False, "videos": [], "has_document": False},
        "meta": {"external_message_id": f"{channel}-1", "ad_channel": channel, "ad_id": None,
                 "original_media_type": "text", "chat_type": None, "user_id": None, "raw": {}},
        "prefilled_data": {"model": None, "parts_owner": None},
    }
