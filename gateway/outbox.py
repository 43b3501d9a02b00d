"""The forwarder: normalizes stored customer messages and delivers them to n8n.

A background task takes due outbox items (the oldest pending one per chat,
so each chat keeps its order), normalizes them (fetching the chat and, for
voice, a fresh voice link from Avito), POSTs them to ``N8N_WEBHOOK_URL`` and
marks them delivered. Failures back off exponentially on the clock; after
``OUTBOX_MAX_ATTEMPTS`` an item becomes a dead letter that the API can replay.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx

from gateway.avito_client import AvitoClient, segment
from gateway.clock import Clock
from gateway.errors import GatewayError
from gateway.normalize import normalize
from gateway.settings import GatewaySettings
from gateway.store import GatewayStore, OutboxItem

__all__ = ["Forwarder", "VOICE_LINK_TTL"]

log = logging.getLogger("gateway.outbox")
#: Avito's voice links work for one hour; renew a little before.
VOICE_LINK_TTL = 3600
VOICE_LINK_MARGIN = 120


class Forwarder:
    def __init__(
        self,
        settings: GatewaySettings,
        store: GatewayStore,
        avito: AvitoClient,
        clock: Clock,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.settings, self.store, self.avito, self.clock = settings, store, avito, clock
        self.http = httpx.AsyncClient(timeout=settings.n8n_timeout, transport=transport)
        self.wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._run_lock = asyncio.Lock()

    # --- lifecycle ---------------------------------------------------------
    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="gateway-outbox")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        await self.http.aclose()

    async def _loop(self) -> None:
        while True:
            try:
                done = await self.run_once()
            except Exception:  # keep forwarding whatever one item did
                log.exception("outbox pass failed")
                done = 0
            if done:
                continue
            self.wake.clear()
            try:
                await asyncio.wait_for(self.wake.wait(), timeout=self.settings.outbox_poll_interval)
            except TimeoutError:
                pass

    # --- work --------------------------------------------------------------
    async def run_once(self) -> int:
        """Deliver what is due now; returns how many items were attempted."""
        async with self._run_lock:
            items = self.store.due(self.clock.now())
            for item in items:
                await self._deliver(item)
            return len(items)

    def _backoff(self, attempts: int) -> float:
        return float(min(self.settings.outbox_retry_max, self.settings.outbox_retry_min * (2 ** attempts)))

    async def _payload(self, item: OutboxItem) -> dict[str, Any]:
        payload = item.payload
        value = item.raw["payload"]["value"]
        voice_stale = (
            payload is not None
            and payload["media"]["has_voice"]
            and (payload["meta"].get("voice_url_expires_at") or 0) - VOICE_LINK_MARGIN <= self.clock.now()
        )
        if payload is not None and not voice_stale:
            return payload
        chat = await self._chat(value)
        voice_url, expires = None, None
        if value.get("type") == "voice":
            voice_id = (value.get("content") or {}).get("voice", {}).get("voice_id")
            user_id = await self.avito.user_id()
            urls = await self.avito.request(
                "GET", f"/messenger/v1/accounts/{user_id}/getVoiceFiles", params={"voice_ids": voice_id}, retry=True
            )
            voice_url = (urls.get("voices_urls") or {}).get(voice_id)
            if not voice_url:
                raise _NotDelivered(f"Avito gave no link for voice {voice_id}")
            expires = self.clock.now() + VOICE_LINK_TTL
        payload = normalize(item.raw, chat=chat, voice_url=voice_url, voice_url_expires_at=expires)
        self.store.save_payload(item.id, payload)
        return payload

    async def _chat(self, value: dict[str, Any]) -> dict[str, Any] | None:
        """The chat, for the customer's name and item; a failure leaves them empty rather than blocking."""
        try:
            user_id = await self.avito.user_id()
            chat: dict[str, Any] = await self.avito.request(
                "GET", f"/messenger/v2/accounts/{user_id}/chats/{segment(str(value['chat_id']))}", retry=True
            )
            return chat
        except GatewayError as exc:
            log.warning("chat %s not fetched for normalization: %s", value.get("chat_id"), exc.message)
            return None

    async def _deliver(self, item: OutboxItem) -> None:
        now = self.clock.now()
        try:
            if not self.settings.n8n_webhook_url:
                raise _NotDelivered("N8N_WEBHOOK_URL is not set")
            payload = await self._payload(item)
            response = await self.http.post(
                self.settings.n8n_webhook_url,
                json=payload,
                headers={"Idempotency-Key": f"avito-{payload['meta']['external_message_id']}"},
            )
            if not 200 <= response.status_code < 300:
                raise _NotDelivered(f"n8n answered {response.status_code}: {response.text[:200]}")
        except (_NotDelivered, GatewayError) as exc:
            self._failed(item, str(exc))
        except httpx.HTTPError as exc:
            self._failed(item, f"n8n unreachable: {type(exc).__name__}")
        else:
            self.store.delivered(item.id, self.clock.now())
            log.info("forwarded message %s of chat %s after %d attempt(s) (%.3f s)", payload["meta"]["external_message_id"],
                     item.chat_id, item.attempts + 1, self.clock.now() - now)

    def _failed(self, item: OutboxItem, error: str) -> None:
        attempts = item.attempts + 1
        dead = attempts >= self.settings.outbox_max_attempts
        self.store.failed(item.id, error, self.clock.now() + self._backoff(item.attempts), dead)
        log.warning("outbox item %d attempt %d failed%s: %s", item.id, attempts, " (dead letter)" if dead else "", error)


class _NotDelivered(Exception):
    pass
