"""What a send answers after its last failed attempt: the gateway reads the chat once more. There: the message is
the answer. Not there: Avito's own failure (SPEC's 502/504), and the key stays open for a retry that reads the chat
first. Unreadable: 504 send_outcome_unknown."""

from __future__ import annotations

from typing import Any

from avito_harness.stack import Stack
from tests.gateway.conftest import USER, first_chat

SEND = "POST /messenger/v1/accounts/*/chats/*/messages"


def _send(gateway: Any, chat: str, text: str, key: str) -> Any:
    return gateway.api.post("/api/messages/send", json={"chat_id": chat, "text": text},
                            headers={"Idempotency-Key": key})


def _in_chat(sim: Stack, chat: str, text: str) -> int:
    return sum(1 for m in sim.avito.chat(USER, chat)["messages"] if m["content"].get("text") == text)


def test_avito_failing_every_post_is_its_own_502_and_a_retry_with_the_key_posts_once(make_gateway: Any,
                                                                                      sim: Stack) -> None:
    gateway, chat = make_gateway(max_retries=1), first_chat(sim)
    sim.avito.add_fault(route=SEND, status=503, times=2)
    first = _send(gateway, chat, "после сбоя", "k-1")
    assert (first.status_code, first.json()["code"]) == (502, "avito_unavailable"), first.json()
    assert _in_chat(sim, chat, "после сбоя") == 0
    before = len(sim.avito.journal())
    again = _send(gateway, chat, "после сбоя", "k-1")
    assert again.status_code == 200 and _in_chat(sim, chat, "после сбоя") == 1
    calls = [(e["method"], e["path"]) for e in sim.avito.journal()[before:] if "/chats/" in e["path"]]
    assert calls[0][0] == "GET" and calls[-1][0] == "POST"  # the retry read the chat before it posted


def test_a_post_that_landed_without_an_answer_is_answered_with_the_message(make_gateway: Any, sim: Stack) -> None:
    gateway, chat = make_gateway(max_retries=0), first_chat(sim)
    sim.avito.add_fault(route=SEND, effect="lose_answer", times=1)
    answer = _send(gateway, chat, "дошло без ответа", "k-2")
    assert answer.status_code == 200, answer.json()
    assert _in_chat(sim, chat, "дошло без ответа") == 1


def test_an_unreadable_chat_after_the_last_attempt_is_outcome_unknown(make_gateway: Any, sim: Stack) -> None:
    gateway, chat = make_gateway(max_retries=0), first_chat(sim)
    sim.avito.add_fault(route=SEND, status=500, times=1)
    sim.avito.add_fault(route="GET /messenger/v3/accounts/*/chats/*/messages*", status=500, times=None)
    answer = _send(gateway, chat, "неизвестно", "k-3")
    assert (answer.status_code, answer.json()["code"]) == (504, "send_outcome_unknown"), answer.json()
