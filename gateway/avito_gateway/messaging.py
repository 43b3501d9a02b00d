"""Outbound sends: never posted twice.

* ``Idempotency-Key``: the first request's result is stored and returned for
  every repeat (n8n retries on timeout); a concurrent repeat waits for it, in
  this process or on another replica (the key is claimed in the shared store
  with a lease: a replica that died mid-send leaves the key to the next one
  once ``IDEMPOTENCY_LEASE_SECONDS`` have passed). Keys are per account.
* When a send fails in a way that leaves its fate unknown (timeout, dropped
  connection, 5xx), the gateway reads the chat's latest messages to see
  whether it landed before sending again.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import httpx

from avito_gateway.accounts import Account
from avito_gateway.avito_client import AvitoClient, segment
from avito_gateway.clock import Clock, sleep
from avito_gateway.errors import AvitoApiError, GatewayError, InvalidRequestError, RateLimitedError
from avito_gateway.ratelimit import Limiter
from avito_gateway.settings import GatewaySettings
from avito_gateway.store import Store

__all__ = ["Messenger", "MAX_TEXT"]

MAX_TEXT = 1000
#: How much older (seconds, by Avito's clock) than the chat's newest message a message may be and still be our send.
LANDED_WINDOW = 120
RECENT_SEND_TTL = 120
#: How often a request polls for the answer to its key while another replica is sending it.
KEY_POLL_MIN, KEY_POLL_MAX = 0.01, 0.25

Result = tuple[int, dict[str, Any]]


def _text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", errors="replace")).hexdigest()


class Messenger:
    def __init__(
        self,
        settings: GatewaySettings,
        store: Store,
        avito: AvitoClient,
        limiter: Limiter,
        clock: Clock,
        account: Account,
    ) -> None:
        self.settings, self.store, self.avito, self.limiter, self.clock = settings, store, avito, limiter, clock
        self.account = account
        self._key_locks: dict[str, asyncio.Lock] = {}
        self._key_users: dict[str, int] = {}
        self._recent: OrderedDict[tuple[str, str], float] = OrderedDict()

    # --- rate limit --------------------------------------------------------
    def take_slot(self, n: int = 1) -> None:
        wait = self.limiter.acquire(n)
        if wait is not None:
            raise RateLimitedError("Rate limit exceeded, try again later", retry_after=wait)

    # --- echo bookkeeping ---------------------------------------------------
    def is_echo(self, message_id: str, chat_id: str, text: str | None) -> bool:
        """Our own send coming back: known id, or a send still in flight with the same words."""
        sent_at = self._recent.get((chat_id, text or ""))
        if sent_at is not None and self.clock.now() - sent_at < RECENT_SEND_TTL:
            return True
        if self.store.shared:  # the send may be under way on another replica
            return self.store.sent_or_sending(message_id, chat_id, _text_hash(text or ""), self.clock.now() - RECENT_SEND_TTL)
        return self.store.is_our_send(message_id)

    def _remember(self, chat_id: str, text: str) -> None:
        now = self.clock.now()
        if self.store.shared:  # another replica may receive the echo
            self.store.note_sending(chat_id, _text_hash(text), now)
        while self._recent and now - next(iter(self._recent.values())) >= RECENT_SEND_TTL:
            self._recent.popitem(last=False)  # oldest first: O(1) per send however busy the gateway is
        self._recent[(chat_id, text)] = now
        self._recent.move_to_end((chat_id, text))

    # --- idempotency -------------------------------------------------------
    async def idempotent(self, key: str | None, request: dict[str, Any], run: Callable[[], Awaitable[Result]]) -> Result:
        """Run once per key; repeats (also concurrent ones) get the stored answer."""
        if key is None:
            return await run()
        if not key.strip() or len(key) > 200:
            raise InvalidRequestError("Idempotency-Key must be 1 to 200 characters",
                                      details={"fields": {"Idempotency-Key": "1 to 200 characters"}})
        fingerprint = hashlib.sha256(json.dumps(request, sort_keys=True, ensure_ascii=False).encode()).hexdigest()
        if not self.account.is_default:  # one account's key never finds another's answer
            key = f"{self.account.name}\x1f{key}"
        lock = self._key_locks.setdefault(key, asyncio.Lock())
        self._key_users[key] = self._key_users.get(key, 0) + 1
        try:
            async with lock:
                return await self._once(key, fingerprint, run)
        finally:
            self._key_users[key] -= 1
            if not self._key_users[key]:  # nobody holds or waits for it: the map stays as small as the traffic
                del self._key_users[key], self._key_locks[key]

    async def _once(self, key: str, fingerprint: str, run: Callable[[], Awaitable[Result]]) -> Result:
        lease = self.settings.idempotency_lease_seconds
        give_up = time.monotonic() + lease + self.settings.connection_timeout
        poll = KEY_POLL_MIN
        while True:
            stored = self.store.idempotency(key)
            if stored is not None:
                if stored.fingerprint != fingerprint:
                    raise InvalidRequestError("Idempotency-Key was already used for a different request",
                                              status=422, code="idempotency_key_reused")
                if stored.status is not None and stored.response is not None:
                    return stored.status, {**stored.response, "idempotent_replay": True}
            now = self.clock.now()
            if self.store.claim_idempotency(key, fingerprint, now, now + lease):
                break
            # another replica is sending this very request: its answer will be ours
            if time.monotonic() >= give_up:
                raise GatewayError("a request with this Idempotency-Key is still in progress elsewhere", status=409,
                                   code="idempotency_in_progress", retryable=True, retry_after=1.0)
            await asyncio.sleep(poll)
            poll = min(KEY_POLL_MAX, poll * 2)
        try:
            status, body = await run()
        except GatewayError as exc:
            if exc.retryable:
                self.store.release_idempotency(key)  # nothing was posted: a retry may try again
            else:
                self.store.finish_idempotency(key, exc.status, exc.body())
            raise
        self.store.finish_idempotency(key, status, body)
        return status, body

    # --- sending -----------------------------------------------------------
    async def send_text(self, chat_id: str, text: str) -> dict[str, Any]:
        """Post once; on an unknown outcome check the chat before trying again."""
        if not text.strip():
            raise InvalidRequestError("text must not be empty", details={"fields": {"text": "empty"}})
        if len(text) > MAX_TEXT:
            raise InvalidRequestError(f"text is longer than Avito's {MAX_TEXT} characters",
                                      details={"fields": {"text": f"{len(text)} characters"}})
        user_id = await self.avito.user_id()
        path = f"/messenger/v1/accounts/{user_id}/chats/{segment(chat_id)}/messages"
        body = {"type": "text", "message": {"text": text}}
        attempt = 0
        while True:
            self._remember(chat_id, text)
            try:
                sent: dict[str, Any] = await self.avito.request("POST", path, json=body)
                break
            except AvitoApiError as exc:
                unknown_outcome = exc.avito_status is None or exc.avito_status >= 500
                if not unknown_outcome:
                    raise
                landed = await self._landed(user_id, chat_id, text)
                if landed is not None:
                    sent = landed
                    break
                if attempt >= self.settings.max_retries:
                    raise
                await sleep(self.clock, min(self.settings.retry_max_wait, self.settings.retry_min_wait * 2 ** attempt))
                attempt += 1
        self.store.record_sent(str(sent["id"]), chat_id, text, self.clock.now())
        return sent

    async def _landed(self, user_id: int, chat_id: str, text: str) -> dict[str, Any] | None:
        try:
            listing = await self.avito.request(
                "GET", f"/messenger/v3/accounts/{user_id}/chats/{segment(chat_id)}/messages/", params={"limit": 20}, retry=True
            )
        except GatewayError:
            return None
        messages = [m for m in (listing.get("messages", []) if isinstance(listing, dict) else listing) or []
                    if isinstance(m, dict)]
        # Avito's clock, not ours: "recent" is measured from the chat's newest message, so a gateway whose clock
        # differs from Avito's still recognises its own send.
        newest = max((int(m.get("created") or 0) for m in messages), default=0)
        for m in messages:
            if (
                m.get("direction") == "out"
                and (m.get("content") or {}).get("text") == text
                and int(m.get("created") or 0) >= newest - LANDED_WINDOW
                and not self.store.is_our_send(str(m.get("id")))
                and not self.store.is_seller_reply(str(m.get("id")))
            ):
                return m
        return None

    async def upload_and_send_image(self, chat_id: str, data: bytes, filename: str, content_type: str) -> dict[str, Any]:
        user_id = await self.avito.user_id()
        uploaded = await self.avito.request(
            "POST", f"/messenger/v1/accounts/{user_id}/uploadImages",
            files={"uploadfile[]": (filename, data, content_type)},
        )
        if not isinstance(uploaded, dict) or not uploaded:
            raise GatewayError("Avito's uploadImages answer had no image id", status=502, code="avito_error")
        image_id = next(iter(uploaded))
        sent: dict[str, Any] = await self.avito.request(
            "POST", f"/messenger/v1/accounts/{user_id}/chats/{segment(chat_id)}/messages/image", json={"image_id": image_id}
        )
        self.store.record_sent(str(sent["id"]), chat_id, None, self.clock.now())
        return {**sent, "image_id": image_id}

    async def fetch_image(self, url: str) -> tuple[bytes, str, str]:
        """Download an image for sending: only from IMAGE_URL_ALLOWED_HOSTS, at most IMAGE_URL_MAX_BYTES."""
        try:
            parts = urlsplit(url)
            host = parts.hostname
        except ValueError:
            raise InvalidRequestError("image_url is not a valid URL") from None
        if parts.scheme not in ("http", "https") or not host:
            raise InvalidRequestError("image_url must be an absolute http(s) URL")
        if host not in self.settings.image_url_allowed_hosts:
            raise InvalidRequestError(
                f"image_url host {host!r} is not allowed (IMAGE_URL_ALLOWED_HOSTS)",
                status=403, code="image_host_not_allowed",
            )
        limit = self.settings.image_url_max_bytes
        try:
            async with httpx.AsyncClient(timeout=self.settings.connection_timeout) as client:
                async with client.stream("GET", url) as response:
                    if response.status_code != 200:
                        raise InvalidRequestError(f"image_url answered {response.status_code}",
                                                  status=502, code="image_fetch_failed")
                    if int(response.headers.get("content-length") or 0) > limit:
                        raise InvalidRequestError(f"image is larger than {limit} bytes", status=413, code="image_too_large")
                    chunks, size = [], 0
                    async for chunk in response.aiter_bytes():
                        size += len(chunk)
                        if size > limit:
                            raise InvalidRequestError(f"image is larger than {limit} bytes", status=413,
                                                      code="image_too_large")
                        chunks.append(chunk)
                    ctype = response.headers.get("content-type", "application/octet-stream")
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise InvalidRequestError(f"image_url could not be fetched: {type(exc).__name__}", status=502,
                                      code="image_fetch_failed", retryable=True) from None
        name = parts.path.rsplit("/", 1)[-1] or "image"
        return b"".join(chunks), name, ctype
