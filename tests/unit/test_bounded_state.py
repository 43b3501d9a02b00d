"""The fake's state stays bounded under load, in ways a client of Avito's API cannot tell apart (messages) or
handles as it handles any expired token (tokens)."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi.testclient import TestClient

from avito_harness.fakes.avito.app import create_app
from avito_harness.fakes.clock import FakeClock
from avito_harness.fakes.settings import SimSettings
from tests.unit.conftest import USER, get_token


def _fake(**settings: Any) -> TestClient:
    app = create_app(SimSettings(avito_port=0, n8n_port=0, **settings), clock=FakeClock(),
                     transport=httpx.MockTransport(lambda r: httpx.Response(200)))
    return TestClient(app)


def _pages(client: TestClient, sent: int) -> list[Any]:
    """``sent`` messages into a chat, then every page of it Avito's paging reaches (offset at most 1000, limit at
    most 100)."""
    auth = {"Authorization": f"Bearer {get_token(client)}"}
    state = client.app.state.backend.account(USER)  # type: ignore[attr-defined]
    chat = state.list_chats(limit=1)[0].id
    for n in range(sent):
        state.send_text(chat, f"load {n}")
    url = f"/messenger/v3/accounts/{USER}/chats/{chat}/messages/"
    return [client.get(url, params={"limit": 100, "offset": offset}, headers=auth).json()
            for offset in range(0, 1001, 100)]


def _sends_until_trimmed(cap: int) -> int:
    """How many sends leave a capped chat right after a trim: the fewest messages it ever holds past the cap."""
    state = _fake(max_messages_per_chat=cap).app.state.backend.account(USER)  # type: ignore[attr-defined]
    chat = state.chat(state.list_chats(limit=1)[0].id)
    sent, before = 0, len(chat.messages)
    while len(chat.messages) >= before:
        before = len(chat.messages)
        state.send_text(chat.id, f"load {sent}")
        sent += 1
    return sent


def test_a_chat_keeps_its_newest_messages_and_no_page_of_the_api_changes() -> None:
    sent = _sends_until_trimmed(1101)
    capped, whole = _fake(max_messages_per_chat=1101), _fake()
    assert _pages(capped, sent) == _pages(whole, sent)
    chat = max(capped.app.state.backend.account(USER).chats.values(),  # type: ignore[attr-defined]
               key=lambda c: len(c.messages))
    assert len(chat.messages) == 1101  # trimmed back to the cap, not held whole
    assert chat.messages[-1].content == {"text": f"load {sent - 1}"}


def test_a_cap_below_what_the_api_pages_through_is_refused() -> None:
    try:
        SimSettings(max_messages_per_chat=1100)
    except ValueError as exc:
        assert "max_messages_per_chat" in str(exc)
    else:
        raise AssertionError("a cap of 1100 would end has_more one page early")


def test_past_the_token_cap_the_oldest_token_is_retired_and_a_new_one_works() -> None:
    client = _fake(max_tokens_per_account=3)
    tokens = [get_token(client) for _ in range(4)]
    chats = f"/messenger/v2/accounts/{USER}/chats"
    statuses = [client.get(chats, headers={"Authorization": f"Bearer {t}"}).status_code for t in tokens]
    assert statuses == [401, 200, 200, 200]
    assert client.get(chats, headers={"Authorization": f"Bearer {get_token(client)}"}).status_code == 200
