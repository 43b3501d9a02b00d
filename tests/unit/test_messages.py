"""Messages: list, send, read flags, delete window, envelope switch."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.conftest import USER, first_chat, messages_of, say

V1 = f"/messenger/v1/accounts/{USER}"


def _send(api: Any, auth: dict[str, str], chat_id: str, text: str) -> Any:
    return api.post(f"{V1}/chats/{chat_id}/messages", json={"type": "text", "message": {"text": text}}, headers=auth)


def test_messages_are_newest_first_with_direction(api: Any, auth: dict[str, str]) -> None:
    chat = first_chat(api, auth)
    say(api, chat["id"], "первое")
    _send(api, auth, chat["id"], "второе")
    listed = messages_of(api, auth, chat["id"])
    assert [m["content"].get("text") for m in listed[:2]] == ["второе", "первое"]
    assert [m["direction"] for m in listed[:2]] == ["out", "in"]


def test_messages_path_needs_its_trailing_slash(api: Any, auth: dict[str, str]) -> None:
    chat = first_chat(api, auth)
    response = api.get(f"/messenger/v3/accounts/{USER}/chats/{chat['id']}/messages", headers=auth)
    assert response.status_code == 404


def test_bare_array_envelope_is_selectable_per_account(api: Any, auth: dict[str, str]) -> None:
    chat = first_chat(api, auth)
    api.patch(f"/_sim/accounts/{USER}/settings", json={"messages_envelope": "array"})
    body = api.get(f"/messenger/v3/accounts/{USER}/chats/{chat['id']}/messages/", headers=auth).json()
    assert isinstance(body, list) and body


def test_has_more_tells_when_another_page_exists(api: Any, auth: dict[str, str]) -> None:
    chat = first_chat(api, auth)
    for n in range(3):
        say(api, chat["id"], f"m{n}")
    url = f"/messenger/v3/accounts/{USER}/chats/{chat['id']}/messages/"
    assert api.get(url, params={"limit": 1}, headers=auth).json()["meta"]["has_more"] is True
    assert api.get(url, params={"limit": 100}, headers=auth).json()["meta"]["has_more"] is False


def test_send_text_answers_like_avito_and_lands_in_the_chat(api: Any, auth: dict[str, str]) -> None:
    chat = first_chat(api, auth)
    response = _send(api, auth, chat["id"], "Да, в наличии")
    assert response.status_code == 200
    sent = response.json()
    assert set(sent) == {"id", "author_id", "created", "direction", "type", "content"}
    assert sent["author_id"] == USER
    assert sent["direction"] == "out" and sent["content"] == {"text": "Да, в наличии"}
    assert messages_of(api, auth, chat["id"])[0]["id"] == sent["id"]


def test_text_of_exactly_1000_characters_is_fine_1001_is_not(api: Any, auth: dict[str, str]) -> None:
    chat = first_chat(api, auth)
    assert _send(api, auth, chat["id"], "я" * 1000).status_code == 200
    too_long = _send(api, auth, chat["id"], "я" * 1001)
    assert too_long.status_code == 400
    assert "message.text" in too_long.json()["error"]["fields"]


@pytest.mark.parametrize(
    "body",
    [
        {"type": "text", "message": {"text": ""}},
        {"type": "text", "message": {}},
        {"type": "image", "message": {"text": "hi"}},
        {"type": "text"},
        ["not", "an", "object"],
    ],
)
def test_malformed_send_bodies_get_validation_errors(api: Any, auth: dict[str, str], body: Any) -> None:
    chat = first_chat(api, auth)
    response = api.post(f"{V1}/chats/{chat['id']}/messages", json=body, headers=auth)
    assert response.status_code == 400
    assert response.json()["error"]["fields"]


def test_invalid_json_is_a_400_not_a_500(api: Any, auth: dict[str, str]) -> None:
    chat = first_chat(api, auth)
    response = api.post(f"{V1}/chats/{chat['id']}/messages", content=b"{oops",
                        headers={**auth, "Content-Type": "application/json"})
    assert response.status_code == 400


def test_send_to_unknown_chat_is_404(api: Any, auth: dict[str, str]) -> None:
    response = _send(api, auth, "u2i-nope", "hi")
    assert response.status_code == 404
    assert response.json()["error"]["message"] == "Chat not found"


def test_listing_does_not_mark_read_but_chat_read_does(api: Any, auth: dict[str, str], clock: Any) -> None:
    chat = first_chat(api, auth)
    say(api, chat["id"], "ау")
    assert messages_of(api, auth, chat["id"])[0]["is_read"] is False
    assert messages_of(api, auth, chat["id"])[0]["is_read"] is False
    clock.advance(5)
    api.post(f"{V1}/chats/{chat['id']}/read", headers=auth)
    incoming = [m for m in messages_of(api, auth, chat["id"]) if m["direction"] == "in"]
    assert all(m["is_read"] for m in incoming)
    assert incoming[0]["read"] == int(clock.now())


def test_our_message_gets_read_time_when_the_customer_reads(api: Any, auth: dict[str, str], clock: Any) -> None:
    chat = first_chat(api, auth)
    sent = _send(api, auth, chat["id"], "ответ").json()
    assert messages_of(api, auth, chat["id"])[0]["read"] is None
    clock.advance(30)
    api.post(f"/_sim/accounts/{USER}/chats/{chat['id']}/customer-read")
    mine = messages_of(api, auth, chat["id"])[0]
    assert mine["id"] == sent["id"] and mine["read"] == sent["created"] + 30


def test_read_of_unknown_chat_is_404(api: Any, auth: dict[str, str]) -> None:
    assert api.post(f"{V1}/chats/u2i-nope/read", headers=auth).status_code == 404


def test_delete_within_an_hour_turns_the_message_deleted(api: Any, auth: dict[str, str], clock: Any) -> None:
    chat = first_chat(api, auth)
    sent = _send(api, auth, chat["id"], "опечатка").json()
    clock.advance(3599)
    response = api.post(f"{V1}/chats/{chat['id']}/messages/{sent['id']}", headers=auth)
    assert response.status_code == 200 and response.json() == {}
    kept = next(m for m in messages_of(api, auth, chat["id"]) if m["id"] == sent["id"])
    assert kept["type"] == "deleted" and kept["content"] == {}


def test_delete_after_an_hour_is_refused(api: Any, auth: dict[str, str], clock: Any) -> None:
    chat = first_chat(api, auth)
    sent = _send(api, auth, chat["id"], "старое").json()
    clock.advance(3601)
    response = api.post(f"{V1}/chats/{chat['id']}/messages/{sent['id']}", headers=auth)
    assert response.status_code == 400
    assert "1 hour" in response.json()["error"]["message"]


def test_customers_messages_and_unknown_ids_cannot_be_deleted(api: Any, auth: dict[str, str]) -> None:
    chat = first_chat(api, auth)
    theirs = say(api, chat["id"], "не удаляй")["message"]
    assert api.post(f"{V1}/chats/{chat['id']}/messages/{theirs['id']}", headers=auth).status_code == 403
    assert api.post(f"{V1}/chats/{chat['id']}/messages/{'0' * 32}", headers=auth).status_code == 404


def test_blacklist_accepts_users_and_rejects_garbage(api: Any, auth: dict[str, str], backend: Any) -> None:
    ok = api.post(f"/messenger/v2/accounts/{USER}/blacklist",
                  json={"users": [{"user_id": 200000002, "context": {"item_id": 1, "reason_id": 1}}]}, headers=auth)
    assert ok.status_code == 200
    assert backend.account(USER).blacklist[0]["user_id"] == 200000002
    bad = api.post(f"/messenger/v2/accounts/{USER}/blacklist", json={"users": "x"}, headers=auth)
    assert bad.status_code == 400 and "users" in bad.json()["error"]["fields"]


@pytest.mark.parametrize("kind", ["link", "item", "location", "call", "system"])
def test_every_injectable_message_type_lists_with_its_content(api: Any, auth: dict[str, str], backend: Any, kind: str) -> None:
    chat = first_chat(api, auth)
    extra: dict[str, Any] = {"type": kind}
    if kind == "item":
        extra["item_id"] = chat["context"]["value"]["id"]
    injected = say(api, chat["id"], "текст", **extra)["message"]
    listed = messages_of(api, auth, chat["id"])[0]
    assert listed["id"] == injected["id"] and listed["type"] == kind
    if kind == "system":
        assert listed["author_id"] == 0 and listed["content"]["flow_id"]
    elif kind != "call":
        assert kind in listed["content"]


def test_quote_refers_to_the_quoted_message(api: Any, auth: dict[str, str]) -> None:
    chat = first_chat(api, auth)
    sent = _send(api, auth, chat["id"], "Цена 8900").json()
    reply = say(api, chat["id"], "А дешевле?", quote_id=sent["id"])["message"]
    assert reply["quote"]["id"] == sent["id"] and reply["quote"]["content"] == {"text": "Цена 8900"}


def test_control_api_rejects_bad_injections_with_named_fields(api: Any, auth: dict[str, str]) -> None:
    chat = first_chat(api, auth)
    base = f"/_sim/accounts/{USER}/chats/{chat['id']}/messages"
    assert api.post(base, json={"type": "voice"}).status_code == 400
    assert api.post(base, json={"type": "text"}).status_code == 400
    assert api.post(base, json={"type": "sticker", "text": "x"}).status_code == 400
    assert api.post(f"/_sim/accounts/{USER}/chats/u2i-nope/messages", json={"text": "x"}).status_code == 404
    assert api.post("/_sim/accounts/1/chats/u2i-nope/messages", json={"text": "x"}).status_code == 404
