"""What n8n gets for a stored webhook: the normalized message, with the customer's name (a chat read with a
small time budget and a cache) and, for voice, a fresh download link from Avito."""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from typing import Any, Protocol

from avito_gateway.accounts import Account
from avito_gateway.avito_client import AvitoClient
from avito_gateway.clock import Clock
from avito_gateway.errors import GatewayError
from avito_gateway.logsafe import safe
from avito_gateway.normalize import normalize
from avito_gateway.settings import GatewaySettings
from avito_gateway.store import OutboxItem

__all__ = ["Enricher", "ForwardAccount", "NotForwardable", "VOICE_LINK_MARGIN", "VOICE_LINK_TTL"]

log = logging.getLogger("avito_gateway.outbox")
#: Avito's voice links work for one hour; renew a little before.
VOICE_LINK_TTL = 3600
VOICE_LINK_MARGIN = 120
#: Chats whose users (names) are remembered, and for how long.
CHAT_CACHE_SIZE = 2048
CHAT_CACHE_TTL = 600.0
CHAT_MISS_TTL = 30.0  # a failed read is not repeated for every message of a busy chat


class ForwardAccount(Protocol):
    """What the forwarder needs of the account an item belongs to."""

    @property
    def account(self) -> Account: ...

    @property
    def avito(self) -> AvitoClient: ...


class NotForwardable(Exception):
    """This item cannot be forwarded now (the message says why): one failed attempt of it."""


class Enricher:
    def __init__(self, settings: GatewaySettings, clock: Clock) -> None:
        self.settings, self.clock = settings, clock
        self._chats: OrderedDict[tuple[int, str], tuple[float, dict[str, Any] | None]] = OrderedDict()

    def ready(self, item: OutboxItem) -> dict[str, Any] | None:
        """The payload prepared by an earlier attempt, unless its voice link is about to expire."""
        payload = item.payload
        if payload is None:
            return None
        expires = payload["meta"].get("voice_url_expires_at") or 0
        if payload["media"]["has_voice"] and expires - VOICE_LINK_MARGIN <= self.clock.now():
            return None
        return payload

    async def payload(self, item: OutboxItem, account: ForwardAccount) -> dict[str, Any]:
        """The normalized message for ``item`` (built now: :meth:`ready` had none)."""
        value = item.raw["payload"]["value"]
        chat = await self._chat(account, str(value["chat_id"]))
        voice_url, expires = None, None
        if value.get("type") == "voice":
            voice_id = value["content"]["voice"]["voice_id"]
            voice_url = await account.avito.voice_url(voice_id)
            if voice_url is None:
                raise NotForwardable(f"Avito gave no link for voice {safe(voice_id, 80)}")
            expires = self.clock.now() + VOICE_LINK_TTL
        payload = normalize(item.raw, chat=chat, voice_url=voice_url, voice_url_expires_at=expires)
        if account.account.tenant is not None:
            payload["meta"]["tenant"] = account.account.tenant
        return payload

    async def _chat(self, account: ForwardAccount, chat_id: str) -> dict[str, Any] | None:
        """The chat, for the customer's name and item: cached, read within ENRICH_TIMEOUT, never retried.
        A slow or failing read leaves the name empty rather than holding the message back."""
        now = self.clock.now()
        cache_key = (account.account.user_id or 0, chat_id)
        cached = self._chats.get(cache_key)
        if cached is not None and now - cached[0] < (CHAT_CACHE_TTL if cached[1] is not None else CHAT_MISS_TTL):
            return cached[1]
        chat: dict[str, Any] | None = None
        try:
            chat = await asyncio.wait_for(account.avito.get_chat(chat_id, patient=False),
                                          timeout=self.settings.enrich_timeout)
        except (GatewayError, TimeoutError) as exc:
            reason = exc.message if isinstance(exc, GatewayError) else f"no answer within {self.settings.enrich_timeout:g} s"
            log.warning("chat %s not read for the customer's name: %s", safe(chat_id, 80), safe(reason))
        self._chats[cache_key] = (now, chat)
        self._chats.move_to_end(cache_key)
        while len(self._chats) > CHAT_CACHE_SIZE:
            self._chats.popitem(last=False)
        return chat
