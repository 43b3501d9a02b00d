"""Each n8n flow alone (no sockets): BAT IN, Tenant Resolver, Batcher, AI, BAT OUT, the CRM tables."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from avito_gateway.normalize import normalize
from avito_harness.fakes.audio import wav_bytes
from avito_harness.fakes.clock import FakeClock
from avito_harness.fakes.n8n.crm import SCHEMA, CrmStore
from avito_harness.fakes.n8n.flows.ai import answer_for
from avito_harness.fakes.n8n.flows.bat_in import BatIn, Rejected, contract_errors, extra_fields
from avito_harness.fakes.n8n.flows.bat_out import BatOutAvito
from avito_harness.fakes.n8n.flows.batcher import Batch, Batcher, batch_key
from avito_harness.fakes.n8n.flows.config import DEFAULT_AI_RULES, FlowConfig
from avito_harness.fakes.n8n.flows.tenant import resolve_tenant

ROOT = Path(__file__).resolve().parents[2]


def message(text: str = "Привет", *, user: str = "555", chat: str = "u2i-abc", kind: str = "text",
            content: dict[str, Any] | None = None, voice_url: str | None = None) -> dict[str, Any]:
    webhook = {"id": "e", "version": "v3.0.0", "timestamp": 1, "payload": {"type": "message", "value": {
        "id": f"m-{text}", "chat_id": chat, "user_id": 100000001, "author_id": int(user), "created": 1764590400,
        "type": kind, "chat_type": "u2i", "content": content or {"text": text}, "item_id": 7}}}
    return normalize(webhook, voice_url=voice_url, voice_url_expires_at=1.0 if voice_url else None)


def test_crm_tables_are_the_documented_ones() -> None:
    crm = CrmStore()
    columns = {table: [row[1] for row in crm._db.execute(f"PRAGMA table_info({table})")]
               for table in ("appeals", "batches", "messages_history")}
    assert columns["messages_history"] == ["id", "tenant_id", "appeal_id", "message_type", "channel", "text",
                                           "external_message_id", "status", "error", "created_at"]
    assert {"tenant_id", "channel", "external_user_id", "external_chat_id", "status"} <= set(columns["appeals"])
    assert "CREATE TABLE IF NOT EXISTS batches" in SCHEMA


# --- BAT IN -----------------------------------------------------------------------------------------

def test_bat_in_rejects_invalid_messages_with_the_reason() -> None:
    bad = message()
    del bad["external_chat_id"]
    with pytest.raises(Rejected, match="external_chat_id"):
        BatIn(httpx.Client()).process(bad, stt_url=None, stt_key="", stt_model="whisper-1", download_timeout=1)


def test_extra_fields_are_information_not_a_violation() -> None:
    """A gateway may add its own fields (one real gateway sends ``skip: false``): the message is still valid."""
    extended = {**message(), "skip": False}
    extended["media"] = {**extended["media"], "has_sticker": False}
    assert contract_errors(extended) == []
    assert extra_fields(extended) == ["media.has_sticker", "skip"]
    ready, problem = BatIn(httpx.Client()).process(extended, stt_url=None, stt_key="", stt_model="whisper-1",
                                                   download_timeout=1)
    assert problem is None and ready["text"] == "Привет"
    renamed = message()
    renamed["clientName"] = renamed.pop("client_name")
    assert contract_errors(renamed) and "client_name" in contract_errors(renamed)[0]  # a rename is still caught


def _voice_client(audio_status: int = 200, stt_status: int = 200, stt_error: Exception | None = None) -> httpx.Client:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith(".wav"):
            return httpx.Response(audio_status, content=wav_bytes("нужен аккумулятор"), headers={"content-type": "audio/wav"})
        if stt_error is not None:
            raise stt_error
        assert request.headers["authorization"] == "Bearer key"
        return httpx.Response(stt_status, json={"text": "нужен аккумулятор"} if stt_status == 200 else {"error": {}})

    return httpx.Client(transport=httpx.MockTransport(handler))


def test_bat_in_transcribes_voice_and_merges_the_words() -> None:
    voice = message("", kind="voice", content={"voice": {"voice_id": "v1"}}, voice_url="http://127.0.0.1/v/1.wav")
    voice["text"] = "вот"
    ready, problem = BatIn(_voice_client()).process(voice, stt_url="http://127.0.0.1:1", stt_key="key",
                                                    stt_model="whisper-1", download_timeout=1)
    assert problem is None
    assert ready["media"]["voice_transcribed_text"] == "нужен аккумулятор"
    assert ready["text"] == "вот\nнужен аккумулятор"
    assert voice["media"]["voice_transcribed_text"] is None  # the input is not changed


@pytest.mark.parametrize(("client", "problem"), [
    (_voice_client(audio_status=403), "voice download answered 403"),
    (_voice_client(stt_status=500), "transcription answered 500"),
    (_voice_client(stt_error=httpx.ReadTimeout("slow")), "transcription failed: ReadTimeout"),
])
def test_bat_in_voice_problems_are_reported_and_the_message_goes_on(client: httpx.Client, problem: str) -> None:
    voice = message("", kind="voice", content={"voice": {"voice_id": "v1"}}, voice_url="http://127.0.0.1/v/1.wav")
    ready, found = BatIn(client).process(voice, stt_url="http://127.0.0.1:1", stt_key="key", stt_model="whisper-1",
                                         download_timeout=1)
    assert found is not None and found.startswith(problem)
    assert ready["media"]["voice_transcribed_text"] is None and ready["media"]["has_voice"] is True


def test_images_pass_through_bat_in() -> None:
    image = message("", kind="image", content={"image": {"sizes": {"1280x960": "http://127.0.0.1/a.png"}}})
    ready, _ = BatIn(httpx.Client()).process(image, stt_url=None, stt_key="", stt_model="whisper-1", download_timeout=1)
    assert ready["media"]["images"] == [{"url": "http://127.0.0.1/a.png"}]


# --- Tenant Resolver --------------------------------------------------------------------------------

def test_tenant_from_mapping_default_or_rejected() -> None:
    m = message(user="42")
    assert resolve_tenant(m, {"avito:42": "tenant-a"}, "tenant-default") == "tenant-a"
    assert resolve_tenant(m, {}, "tenant-default") == "tenant-default"
    with pytest.raises(Rejected, match="no tenant for avito:42"):
        resolve_tenant(m, {}, None)


# --- Universal Batcher ------------------------------------------------------------------------------

def test_batch_closes_when_the_window_ends_on_the_clock() -> None:
    clock, closed = FakeClock(0), []
    batcher = Batcher(clock, closed.append)
    a = message("раз")
    batcher.add(batch_key("t", a), a, 30)
    clock.advance(29)
    b = message("два")
    batcher.add(batch_key("t", b), b, 30)
    assert closed == []
    clock.advance(1)
    assert [m["text"] for m in closed[0].messages] == ["раз", "два"] and closed[0].closed_at == 30
    c = message("три")
    batcher.add(batch_key("t", c), c, 30)  # after the close: a new batch
    clock.advance(30)
    assert [len(b.messages) for b in closed] == [2, 1]


def test_two_clients_never_share_a_batch() -> None:
    clock, closed = FakeClock(0), []
    batcher = Batcher(clock, closed.append)
    for user in ("1", "2", "1"):
        m = message(f"от {user}", user=user)
        batcher.add(batch_key("t", m), m, 30)
    clock.advance(30)
    assert sorted(tuple(x["external_user_id"] for x in b.messages) for b in closed) == [("1", "1"), ("2",)]


def test_batch_text_joins_the_words() -> None:
    batch = Batch(("t", "avito", "1", "c"), 0, [message("а"), message(""), message("б")])
    batch.messages[1]["text"] = ""
    assert batch.text() == "а\nб"


# --- AI ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "contains"), [
    ("Какая гарантия?", "Гарантия"), ("Ещё продаёте?", "в наличии"), ("нужен АКБ 60 ампер", "Подберём"),
    ("сколько стоит", "Цена"), ("добрый вечер", "Менеджер ответит"),
])
def test_rule_based_ai_is_deterministic(text: str, contains: str) -> None:
    answer = answer_for(text, "Иван", DEFAULT_AI_RULES, FlowConfig().ai_default_answer)
    assert contains in answer and answer.startswith("Здравствуйте, Иван!")
    assert answer == answer_for(text, "Иван", DEFAULT_AI_RULES, FlowConfig().ai_default_answer)


def test_ai_mentions_photos_and_handles_no_name() -> None:
    answer = answer_for("", None, [], "Здравствуйте{name}!", has_images=True)
    assert answer == "Здравствуйте! Фото получили, спасибо."


# --- BAT OUT ----------------------------------------------------------------------------------------

JOB = {"tenant_id": "t", "appeal_id": 1, "channel": "avito", "message_text": "Ответ", "external_chat_id": "u2i-abc"}


def _gateway(*answers: Any) -> tuple[httpx.Client, list[httpx.Request]]:
    seen: list[httpx.Request] = []
    queue = list(answers)

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        answer = queue.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return httpx.Response(answer[0], json=answer[1])

    return httpx.Client(transport=httpx.MockTransport(handler)), seen


OK = (200, {"success": True, "chat_id": "u2i-abc", "message": "Message sent", "response": {"id": "m1", "created": 1}})


def test_bat_out_sends_with_key_and_reports_the_message_id() -> None:
    client, seen = _gateway(OK)
    out = BatOutAvito(client).send(JOB, gateway_url="http://127.0.0.1:1", api_key="k", timeout=30, retries=2,
                                   idempotency_key="bat-out-1-1")
    assert out == {"success": True, "channel": "avito", "message_id": "m1", "chat_id": "u2i-abc", "appeal_id": 1,
                   "attempts": 1}
    assert seen[0].headers["x-api-key"] == "k" and json.loads(seen[0].content) == {"chat_id": "u2i-abc", "text": "Ответ"}


def test_bat_out_retries_twice_with_the_same_idempotency_key() -> None:
    client, seen = _gateway(httpx.ReadTimeout("slow"), (502, {"success": False, "error": "x", "retryable": True}), OK)
    out = BatOutAvito(client).send(JOB, gateway_url="http://127.0.0.1:1", api_key="k", timeout=30, retries=2,
                                   idempotency_key="bat-out-1-1")
    assert out["success"] is True and out["attempts"] == len(seen) == 3
    assert {r.headers["idempotency-key"] for r in seen} == {"bat-out-1-1"}


def test_bat_out_stops_on_a_non_retryable_error_and_reports_it() -> None:
    error = {"success": False, "error": "Avito API Error 404: Chat not found", "retryable": False}
    client, seen = _gateway((404, error))
    out = BatOutAvito(client).send(JOB, gateway_url="http://127.0.0.1:1", api_key="k", timeout=30, retries=2,
                                   idempotency_key="k1")
    assert out == {"success": False, "channel": "avito", "error": "Avito API Error 404: Chat not found", "attempts": 1}
    assert len(seen) == 1


@pytest.mark.parametrize(("job", "url", "error"), [
    ({**JOB, "external_chat_id": ""}, "http://127.0.0.1:1", "invalid external_chat_id"),
    ({**JOB, "external_chat_id": "12345"}, "http://127.0.0.1:1", "invalid external_chat_id"),
    (JOB, None, "gateway URL is not configured"),
])
def test_bat_out_validates_before_sending(job: dict[str, Any], url: str | None, error: str) -> None:
    client, seen = _gateway()
    out = BatOutAvito(client).send(job, gateway_url=url, api_key="k", timeout=1, retries=2, idempotency_key="k")
    assert out["success"] is False and out["error"].startswith(error) and seen == []


# --- the CRM tables ---------------------------------------------------------------------------------

def test_one_appeal_per_client_and_chat() -> None:
    crm = CrmStore()
    first, created = crm.upsert_appeal(tenant_id="t", channel="avito", external_user_id="1", external_chat_id="c",
                                       client_name="Иван", status="open", now="2025-12-01T12:00:00")
    again, created_again = crm.upsert_appeal(tenant_id="t", channel="avito", external_user_id="1", external_chat_id="c",
                                             client_name=None, status="waiting_operator", now="2025-12-01T12:01:00")
    other, _ = crm.upsert_appeal(tenant_id="t", channel="avito", external_user_id="2", external_chat_id="c2",
                                 client_name=None, status="open", now="2025-12-01T12:01:00")
    assert created and not created_again and first["id"] == again["id"] != other["id"]
    assert again["batches"] == 2 and again["status"] == "waiting_operator" and again["client_name"] == "Иван"


def test_flow_config_refuses_unknown_or_bad_settings() -> None:
    with pytest.raises(ValueError):
        FlowConfig().merged({"colour": "red"})
    with pytest.raises(ValueError):
        FlowConfig(mode="dance")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        FlowConfig(ai_rules=[{"match": "x"}])
