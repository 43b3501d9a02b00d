"""Posting to Avito chats, never twice: when a send fails in a way that leaves its fate unknown (timeout,
dropped connection, 5xx), the chat's latest messages are read to see whether it landed before it is sent
again."""

from __future__ import annotations

from typing import Any

from avito_gateway.avito_client import AvitoClient
from avito_gateway.clock import Clock, sleep
from avito_gateway.echoes import EchoBook
from avito_gateway.errors import AvitoApiError, GatewayError, InvalidRequestError
from avito_gateway.settings import GatewaySettings
from avito_gateway.store import Store

__all__ = ["LANDED_WINDOW", "MAX_TEXT", "Sender"]

MAX_TEXT = 1000
#: How much older (seconds, by Avito's clock) than the chat's newest message a message may be and still be our send.
LANDED_WINDOW = 120


class Sender:
    """One account's sends."""

    def __init__(self, settings: GatewaySettings, store: Store, avito: AvitoClient, clock: Clock,
                 echoes: EchoBook) -> None:
        self.settings, self.store, self.avito, self.clock, self.echoes = settings, store, avito, clock, echoes

    async def send_text(self, chat_id: str, text: str) -> dict[str, Any]:
        """Post once; on an unknown outcome check the chat before trying again."""
        if not text.strip():
            raise InvalidRequestError("text must not be empty", details={"fields": {"text": "empty"}})
        if len(text) > MAX_TEXT:
            raise InvalidRequestError(f"text is longer than Avito's {MAX_TEXT} characters",
                                      details={"fields": {"text": f"{len(text)} characters"}})
        attempt = 0
        while True:
            await self.echoes.sending(chat_id, text)
            try:
                sent = await self.avito.send_text(chat_id, text)
                break
            except AvitoApiError as exc:
                unknown_outcome = exc.avito_status is None or exc.avito_status >= 500
                if not unknown_outcome:
                    raise
                landed = await self._landed(chat_id, text)
                if landed is not None:
                    sent = landed
                    break
                if attempt >= self.settings.max_retries:
                    raise
                await sleep(self.clock, min(self.settings.retry_max_wait, self.settings.retry_min_wait * 2 ** attempt))
                attempt += 1
        await self.store.record_sent(str(sent["id"]), chat_id, text, self.clock.now())
        return sent

    async def _landed(self, chat_id: str, text: str) -> dict[str, Any] | None:
        """Our text among the chat's latest messages, not yet known as any send of ours (None: not there, or the
        chat could not be read)."""
        try:
            listing = await self.avito.list_messages(chat_id, limit=20)
        except GatewayError:
            return None
        messages = [m for m in listing if isinstance(m, dict)]
        # Avito's clock, not ours: "recent" is measured from the chat's newest message, so a gateway whose clock
        # differs from Avito's still recognises its own send.
        newest = max((int(m.get("created") or 0) for m in messages), default=0)
        for m in messages:
            if (
                m.get("direction") == "out"
                and (m.get("content") or {}).get("text") == text
                and int(m.get("created") or 0) >= newest - LANDED_WINDOW
                and not await self.store.is_our_send(str(m.get("id")))
                and not await self.store.is_seller_reply(str(m.get("id")))
            ):
                return m
        return None

    async def send_image(self, chat_id: str, data: bytes, filename: str, content_type: str) -> dict[str, Any]:
        """Upload, then post the image."""
        image_id = await self.avito.upload_image(filename, data, content_type)
        sent = await self.avito.send_image(chat_id, image_id)
        await self.store.record_sent(str(sent["id"]), chat_id, None, self.clock.now())
        return {**sent, "image_id": image_id}
