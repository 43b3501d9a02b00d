"""Our own sends coming back: Avito delivers every message we post as a webhook too (an "echo"), which must
not reach n8n as the customer's. A send is remembered before it is posted (in memory, and in the shared
store so another replica that receives the echo knows it), and by its message id once Avito answered.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict

from avito_gateway.clock import Clock
from avito_gateway.store import Store

__all__ = ["EchoBook", "RECENT_SEND_TTL", "text_hash"]

#: How long (seconds) a send under way is taken as the author of a matching echo.
RECENT_SEND_TTL = 120


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", errors="replace")).hexdigest()


class EchoBook:
    """One account's sends, as far as echoes are concerned."""

    def __init__(self, store: Store, clock: Clock) -> None:
        self.store, self.clock = store, clock
        self._recent: OrderedDict[tuple[str, str], float] = OrderedDict()

    async def is_echo(self, message_id: str, chat_id: str, text: str | None) -> bool:
        """Our own send coming back: known id, or a send still in flight with the same words."""
        sent_at = self._recent.get((chat_id, text or ""))
        if sent_at is not None and self.clock.now() - sent_at < RECENT_SEND_TTL:
            return True
        if self.store.shared:  # the send may be under way on another replica
            return await self.store.sent_or_sending(message_id, chat_id, text_hash(text or ""),
                                                    self.clock.now() - RECENT_SEND_TTL)
        return await self.store.is_our_send(message_id)

    async def sending(self, chat_id: str, text: str) -> None:
        """A text is about to be posted to ``chat_id``."""
        now = self.clock.now()
        if self.store.shared:  # another replica may receive the echo
            await self.store.note_sending(chat_id, text_hash(text), now)
        while self._recent and now - next(iter(self._recent.values())) >= RECENT_SEND_TTL:
            self._recent.popitem(last=False)  # oldest first: O(1) per send however busy the gateway is
        self._recent[(chat_id, text)] = now
        self._recent.move_to_end((chat_id, text))
