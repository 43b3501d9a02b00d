"""Chats kept in Avito's list order as they change, so a page of the newest costs its length, not a sort of all."""

from __future__ import annotations

import bisect
from collections.abc import Iterator

from avito_harness.fakes.avito.models import Chat

__all__ = ["ChatOrder"]


class ChatOrder:
    """Chat ids by ``(updated, activity)``. A chat that changes gets a new key at the end (where a new update
    lands); its old key stays behind, skipped when read and dropped once the stale outnumber the live.
    Not thread-safe: the account's lock guards it."""

    def __init__(self) -> None:
        self._keys: list[tuple[int, int, str]] = []
        self._live: dict[str, tuple[int, int]] = {}

    def touch(self, chat: Chat) -> None:
        """``chat`` was created or updated: its place is by its current ``updated`` and ``activity``."""
        key = (chat.updated, chat.activity, chat.id)
        self._live[chat.id] = (chat.updated, chat.activity)
        if not self._keys or key > self._keys[-1]:
            self._keys.append(key)
        else:  # an update stamped earlier than the newest (a clock set back): in its place
            bisect.insort(self._keys, key)
        if len(self._keys) > 2 * len(self._live) + 64:
            self._keys = [k for k in self._keys if self._live.get(k[2]) == (k[0], k[1])]

    def newest_first(self) -> Iterator[str]:
        """Chat ids, newest update first."""
        live = self._live
        for updated, activity, chat_id in reversed(self._keys):
            if live.get(chat_id) == (updated, activity):
                yield chat_id
