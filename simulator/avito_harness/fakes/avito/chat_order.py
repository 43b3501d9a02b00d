"""Chats kept in Avito's list order as they change, so a page of the newest costs its length, not a sort of all."""

from __future__ import annotations

import bisect
from collections.abc import Iterator

from avito_harness.fakes.avito.models import Chat

__all__ = ["ChatOrder"]


class ChatOrder:
    """Chat ids sorted by ``(updated, activity)``. A chat that changes leaves its old place (found by bisection;
    a chat near the top, the usual one, moves at almost no cost) and lands at the end, where a new update goes.
    Not thread-safe: the account's lock guards it."""

    def __init__(self) -> None:
        self._keys: list[tuple[int, int, str]] = []
        self._placed: dict[str, tuple[int, int, str]] = {}

    def touch(self, chat: Chat) -> None:
        """``chat`` was created or updated: its place is by its current ``updated`` and ``activity``."""
        old = self._placed.get(chat.id)
        if old is not None:
            del self._keys[bisect.bisect_left(self._keys, old)]
        key = self._placed[chat.id] = (chat.updated, chat.activity, chat.id)
        if not self._keys or key > self._keys[-1]:
            self._keys.append(key)
        else:  # an update stamped earlier than the newest (a clock set back): in its place
            bisect.insort(self._keys, key)

    def __len__(self) -> int:
        """One place per chat."""
        return len(self._keys)

    def newest_first(self) -> Iterator[str]:
        """Chat ids, newest update first."""
        for _, _, chat_id in reversed(self._keys):
            yield chat_id
