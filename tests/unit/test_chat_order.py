"""The chat list walks an order index instead of sorting every chat: it lists what the sort listed, page by page,
whatever the order of creations, messages and clock moves (backwards too)."""

from __future__ import annotations

import random
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from avito_harness.fakes.avito.models import Account, Chat
from avito_harness.fakes.avito.state import AvitoState
from avito_harness.fakes.clock import FakeClock

ops = st.lists(st.one_of(
    st.tuples(st.just("chat"), st.sampled_from(["u2i", "u2u"])),
    st.tuples(st.just("say"), st.integers(0, 30)),
    st.tuples(st.just("read"), st.integers(0, 30)),
    st.tuples(st.just("clock"), st.sampled_from([0.4, 1, 30, "back"])),
), max_size=60)


class _Media:
    def image_sizes(self, key: str) -> dict[str, str]:
        return {}

    def image_url(self, key: str, size: str) -> str:
        return ""

    def register_voice(self, user_id: int, voice_id: str, text: str) -> None:
        return None

    def voice_link(self, user_id: int, voice_id: str) -> str:
        return ""


def _sorted(state: AvitoState, types: set[str], unread: bool, offset: int, limit: int) -> list[Chat]:
    """What list_chats answered before the index: filter every chat, sort, slice."""
    chats = [c for c in state.chats.values() if c.chat_type in types and (not unread or state.has_unread(c))]
    chats.sort(key=lambda c: (c.updated, c.activity), reverse=True)
    return chats[offset: offset + limit]


@settings(max_examples=150, deadline=None)
@given(script=ops, pages=st.lists(st.tuples(st.integers(0, 12), st.integers(1, 8), st.booleans(),
                                            st.sampled_from([("u2i",), ("u2u",), ("u2i", "u2u")])), min_size=1,
                                  max_size=4))
def test_the_index_lists_what_sorting_every_chat_listed(script: list[tuple[str, Any]],
                                                        pages: list[tuple[int, int, bool, tuple[str, ...]]]) -> None:
    clock = FakeClock(1_764_590_400.0)
    state = AvitoState(Account(user_id=1, name="shop", client_id="c", client_secret="s"), clock=clock,
                       rng=random.Random(1), media=_Media())
    item = state.add_item("battery", 100)
    customer = state.add_customer("Ivan")
    chats: list[Chat] = []
    for op, arg in script:
        if op == "chat":
            chats.append(state.create_chat(customer.id, item_id=item.id if arg == "u2i" else None, chat_type=arg))
        elif op == "say" and chats:
            state.inject(chats[arg % len(chats)].id, "text", text="hi")
        elif op == "read" and chats:
            state.mark_read(chats[arg % len(chats)].id)
        elif op == "clock":
            if arg == "back":
                clock.reset()  # the only way back: to where the clock started
            else:
                clock.advance(arg)
    assert len(state.order) == len(state.chats)  # no stale places left behind for a page to walk past
    for offset, limit, unread, types in pages:
        listed = state.list_chats(limit=limit, offset=offset, chat_types=types, unread_only=unread)
        assert [c.id for c in listed] == [c.id for c in _sorted(state, set(types), unread, offset, limit)]


def test_a_chat_updated_after_the_clock_went_back_lists_below_newer_updates() -> None:
    clock = FakeClock(1_764_590_400.0)
    state = AvitoState(Account(user_id=1, name="shop", client_id="c", client_secret="s"), clock=clock,
                       rng=random.Random(1), media=_Media())
    item, customer = state.add_item("battery", 100), state.add_customer("Ivan")
    older = state.create_chat(customer.id, item_id=item.id)
    clock.advance(30)
    newer = state.create_chat(customer.id, item_id=item.id)
    clock.reset()
    state.inject(older.id, "text", text="hi")  # stamped 30 s before the newer chat's creation
    assert [c.id for c in state.list_chats()] == [newer.id, older.id]
