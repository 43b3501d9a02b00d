"""Any valid Avito webhook normalizes to a message valid against contracts/normalized-message.schema.json."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
from hypothesis import given
from hypothesis import strategies as st

from avito_gateway.normalize import classify, normalize
from avito_gateway.webhook_body import parse_webhook
from avito_harness.fakes.settings import DEMO_USER_ID
from tests.conftest import CONTRACTS

SCHEMA = json.loads((CONTRACTS / "normalized-message.schema.json").read_text())
WEBHOOK = json.loads((CONTRACTS / "avito" / "webhook-v3.schema.json").read_text())
USER = DEMO_USER_ID

ids = st.text("0123456789abcdef", min_size=32, max_size=32)
urls = st.builds(lambda s: f"https://img.example.test/{s}.jpg", st.text("abc123", min_size=1, max_size=8))
sizes = st.dictionaries(st.sampled_from(["1280x960", "640x480", "140x105", "32x32", "bogus"]), urls, min_size=1)
contents = st.one_of(
    st.tuples(st.just("text"), st.builds(lambda t: {"text": t}, st.text(max_size=200))),
    st.tuples(st.just("image"), st.builds(lambda s: {"image": {"sizes": s}}, sizes)),
    st.tuples(st.just("voice"), st.builds(lambda v: {"voice": {"voice_id": v}}, ids)),
    st.tuples(st.just("link"), st.builds(lambda u: {"link": {"text": None, "url": u, "preview": None}}, urls)),
    st.tuples(st.just("item"), st.builds(lambda t: {"item": {"title": t, "item_url": "https://avito.ru/1",
                                                             "image_url": "", "price_string": None}}, st.text(max_size=50))),
    st.tuples(st.just("location"), st.just({"location": {"lat": 55.7, "lon": 37.6, "kind": "house", "text": "Москва",
                                                          "title": "Москва"}})),
    st.tuples(st.just("call"), st.just({"call": {"status": "missed", "target_user_id": USER}})),
    st.tuples(st.just("system"), st.builds(lambda t: {"text": t, "flow_id": "x"}, st.text(max_size=50))),
    st.tuples(st.sampled_from(["deleted", "appCall", "file", "video"]), st.just({})),
)


@st.composite
def webhooks(draw: st.DrawFn) -> dict[str, Any]:
    kind, content = draw(contents)
    chat_type = draw(st.sampled_from(["u2i", "u2u", "a2u"]))
    value: dict[str, Any] = {
        "id": draw(ids),
        "chat_id": f"{chat_type}-" + draw(st.text("abcXYZ019~_", min_size=22, max_size=22)),
        "user_id": USER,
        # the customer, our own account (echo / seller reply) and Avito itself (0), each drawn a third of the time
        "author_id": draw(st.one_of(st.integers(1, 10**10), st.just(USER), st.just(0))),
        "created": draw(st.integers(0, 4_102_444_800)),
        "type": kind,
        "chat_type": chat_type,
        "content": content,
        "item_id": draw(st.integers(1, 10**10)) if chat_type == "u2i" else None,
    }
    if draw(st.booleans()):
        value["published_at"] = "2025-10-09T09:53:20Z"
    return {"id": "6f1d2c3b-4a59-4e8f-9d0c-1b2a3c4d5e6f", "version": "v3.0.0", "timestamp": value["created"],
            "payload": {"type": "message", "value": value}}


chats = st.one_of(st.none(), st.builds(lambda n: {"users": [{"id": USER, "name": "Мы"}], "context": {}}, st.text(max_size=5)))


@given(webhook=webhooks(), chat=chats, voice=st.one_of(st.none(), urls))
def test_every_valid_webhook_normalizes_to_a_valid_message(webhook: dict[str, Any], chat: Any, voice: str | None) -> None:
    jsonschema.validate(webhook, WEBHOOK)  # the generator makes only valid Avito webhooks
    if webhook["payload"]["value"]["type"] == "voice":
        voice = voice or "https://files.example.test/voice.wav"  # the forwarder never sends a voice without its link
    message = normalize(webhook, chat=chat, voice_url=voice, voice_url_expires_at=1.0 if voice else None)
    jsonschema.validate(message, SCHEMA)
    value = webhook["payload"]["value"]
    assert message["external_chat_id"] == value["chat_id"]
    assert message["meta"]["raw"] == webhook
    assert message["media"]["has_voice"] == (value["type"] == "voice")
    if value["type"] == "image":
        best = max(value["content"]["image"]["sizes"],
                   key=lambda s: int(s.split("x")[0]) * int(s.split("x")[1]) if "x" in s else 0)
        assert message["media"]["images"] == [{"url": value["content"]["image"]["sizes"][best]}]


@given(webhook=webhooks(), ours=st.booleans())
def test_classification_is_total_and_only_customers_are_customers(webhook: dict[str, Any], ours: bool) -> None:
    value = webhook["payload"]["value"]
    kind = classify(value, our_send=ours)
    assert kind in ("customer", "echo", "seller_reply", "system")
    assert (kind == "customer") == (value["author_id"] not in (0, USER) and value["type"] != "system")
    if value["author_id"] == USER and value["type"] != "system":
        assert kind == ("echo" if ours else "seller_reply")  # our own account: our send, or typed in the Avito app
    if value["author_id"] == 0:
        assert kind == "system"


@given(webhook=webhooks())
def test_the_receiver_accepts_every_valid_avito_webhook(webhook: dict[str, Any]) -> None:
    """Ingest checks refuse hostile bodies, never a real one."""
    assert parse_webhook(json.dumps(webhook, ensure_ascii=False).encode()) == webhook
