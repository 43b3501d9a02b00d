"""A chat page kept between requests (``AvitoState.render_chats``) is never stale: whatever happened to the
account in between (messages either way, deletions, reads, a renamed account, an item or a customer replaced
under the same id, a new public URL, the clock standing still), every chat on the page is what rendering it
afresh gives."""

from __future__ import annotations

from typing import Any

import httpx
from hypothesis import given, settings
from hypothesis import strategies as st

from avito_harness.fakes.avito.app import create_app
from avito_harness.fakes.avito.state import AvitoState
from avito_harness.fakes.clock import FakeClock
from avito_harness.fakes.settings import DEMO_USER_ID, SimSettings

steps = st.lists(st.one_of(
    st.tuples(st.just("customer says"), st.integers(0, 3)),
    st.tuples(st.just("we send"), st.integers(0, 1)),
    st.tuples(st.just("delete last"), st.integers(0, 1)),
    st.tuples(st.just("read"), st.integers(0, 3)),
    st.tuples(st.just("rename account"), st.sampled_from(["АКБ-Центр", "Battery CRM"])),
    st.tuples(st.just("replace item"), st.integers(0, 1)),
    st.tuples(st.just("replace customer"), st.integers(0, 1)),
    st.tuples(st.just("public url"), st.sampled_from(["http://127.0.0.1:1", "http://localhost:2/"])),
    st.tuples(st.just("tick"), st.sampled_from([0, 1])),
    st.tuples(st.just("page"), st.just(0)),
), max_size=40)


def _account() -> tuple[AvitoState, Any, FakeClock]:
    clock = FakeClock()
    app = create_app(SimSettings(demo_data=False), clock=clock,
                     transport=httpx.MockTransport(lambda r: httpx.Response(200, json={})))
    backend = app.state.backend
    state = backend.account(DEMO_USER_ID)
    items = [state.add_item("АКБ 60Ач", 5000, item_id=1000 + n) for n in range(2)]
    customers = [state.add_customer(f"Покупатель {n}", customer_id=5000 + n) for n in range(2)]
    for n in range(4):
        state.create_chat(customers[n % 2].id, item_id=items[n % 2].id if n < 3 else None)
    return state, backend, clock


def _page(state: AvitoState) -> list[Any]:
    return state.render_chats(state.list_chats(limit=100, chat_types=("u2i", "u2u")))


@settings(max_examples=150, deadline=None)
@given(script=steps)
def test_a_kept_chat_page_is_always_what_rendering_it_afresh_gives(script: list[tuple[str, Any]]) -> None:
    state, backend, clock = _account()
    chats = list(state.chats.values())
    _page(state)
    for step, value in script:
        chat = chats[value] if isinstance(value, int) and value < len(chats) else chats[0]
        if step == "customer says":
            state.inject(chat.id, "text", text="есть в наличии?")
        elif step == "we send":
            state.send_text(chat.id, "да")
        elif step == "delete last" and chat.messages and chat.messages[-1].author_id == state.user_id:
            state.delete_message(chat.id, chat.messages[-1].id)
        elif step == "read":
            state.mark_read(chat.id)
        elif step == "rename account":
            state.account.name = value
        elif step == "replace item":
            old = state.items[1000 + value]
            state.add_item(old.title + " (новая цена)", old.price + 100, item_id=old.id)
        elif step == "replace customer":
            old = state.customers[5000 + value]
            state.add_customer(old.name + "а", customer_id=old.id)
        elif step == "public url":
            backend.public_url = value
        elif step == "tick":
            clock.advance(value)
        kept = _page(state)
        fresh = [state.render_chat(c) for c in state.list_chats(limit=100, chat_types=("u2i", "u2u"))]
        assert kept == fresh, step
