"""Talking to Avito for one account: one typed method per Avito operation the gateway uses (every Avito path
lives here), its OAuth token (single flight), a connection cap, retries, error mapping.

Callers never see tokens. A cached client-credentials token is refreshed
``TOKEN_REFRESH_MARGIN`` seconds before it expires by exactly one request,
however many calls wait for it, and they share its failure too
(:mod:`avito_gateway.avito_token`); a 401 (or Avito's "expired" 403) drops the
token, fetches a new one and replays the call once. Reads are retried on
5xx, 429 and transport errors with exponential backoff and jitter; writes
are not (the caller decides, see :mod:`avito_gateway.sending`). An error raised
before the request left the process (no token, a guard refusing, no connection)
says so (``before_request``): nothing was posted.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Awaitable, Callable
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote

import httpx

from avito_gateway.accounts import Account
from avito_gateway.avito_token import TokenSource
from avito_gateway.clock import Clock, sleep
from avito_gateway.errors import (
    AvitoApiError,
    AvitoOtherError,
    InvalidRequestError,
    avito_error,
    avito_transport_error,
)
from avito_gateway.http import HttpAnswer, HttpFailure, http_client
from avito_gateway.settings import GatewaySettings

__all__ = ["AvitoClient", "Guard", "segment", "RETRY_AFTER_CEILING"]

#: The longest Retry-After the gateway will report to its callers (one day).
RETRY_AFTER_CEILING = 86400.0
#: Awaited right before a post leaves the process, once the token is there; returns the seconds the post may
#: take (raises to stop it: see :meth:`avito_gateway.leases.Lease.ensure`).
Guard = Callable[[], Awaitable[float]]
#: Transport failures that happen before any byte of the request was sent.
_NOT_SENT = ("ConnectError", "ConnectTimeout")


def segment(value: str) -> str:
    """A chat or message id as one URL path segment (Avito chat ids may hold ``~``; anything else is encoded).

    ``.`` and ``..`` are refused: encoded or not, HTTP clients and servers resolve them as path steps."""
    if value in ("", ".", ".."):
        raise InvalidRequestError(f"{value!r} is not a chat id", details={"fields": {"chat_id": "not an id"}})
    return quote(value, safe="~")


class AvitoClient:
    def __init__(self, settings: GatewaySettings, clock: Clock, account: Account, *,
                 transport: httpx.AsyncBaseTransport | None = None):
        self.settings, self.clock, self.account = settings, clock, account
        self.http = http_client(base_url=account.avito_api_base_url or settings.avito_api_base_url, timeout=settings.connection_timeout,
                                max_connections=settings.max_connections, transport=transport,
                                headers={"User-Agent": "avito-harness-gateway/0.1"})
        self._slots = asyncio.Semaphore(settings.max_connections)
        self.tokens = TokenSource(settings, clock, self._fetch_token)
        self._user_id = account.user_id
        self._rng = random.Random()
        self.in_flight = 0
        self.max_in_flight = 0

    async def close(self) -> None:
        await self.http.aclose()

    # --- token -------------------------------------------------------------
    def token_state(self) -> dict[str, Any]:
        """What /api/token shows: never any part of the token itself."""
        return self.tokens.public_state()

    async def token(self) -> str:
        return await self.tokens.get()

    async def _fetch_token(self) -> tuple[str, float]:
        data = {
            "grant_type": "client_credentials",
            "client_id": self.account.client_id,
            "client_secret": self.account.client_secret,
        }
        response = await self._send("POST", "/token", data=data)
        if response.status_code != 200:
            raise avito_error(response.status_code, _json(response))
        body = _json(response)
        if not isinstance(body, dict) or not body.get("access_token"):
            raise avito_error(502, {"error": "token answer without access_token"})
        try:
            lifetime = float(body.get("expires_in", 86400))
        except (TypeError, ValueError):
            lifetime = 86400.0
        return str(body["access_token"]), lifetime

    async def user_id(self) -> int:
        """Our own Avito user id: configured, or asked of Avito once."""
        if self._user_id is None:
            me = await self.request("GET", "/core/v1/accounts/self", retry=True)
            if not isinstance(me, dict) or not isinstance(me.get("id"), int):
                raise AvitoOtherError("Avito's own-account answer had no user id", avito_status=200)
            self._user_id = me["id"]
        return self._user_id

    async def _account_path(self, version: str, rest: str) -> str:
        return f"/messenger/{version}/accounts/{await self.user_id()}{rest}"

    # --- operations: one method per Avito call the gateway makes --------------------------------------------
    async def list_chats(self, params: dict[str, Any]) -> list[Any]:
        """Chats v2 (``limit``, ``offset``, ``unread_only``, ``chat_types``, ``item_ids`` as Avito takes them)."""
        body = await self.request("GET", await self._account_path("v2", "/chats"), params=params, retry=True)
        found = body.get("chats", []) if isinstance(body, dict) else []
        return found if isinstance(found, list) else []

    async def get_chat(self, chat_id: str, *, patient: bool = True) -> dict[str, Any] | None:
        """One chat v2 (its users and item); ``patient=False``: once, no waiting out a 429."""
        found = await self.request("GET", await self._account_path("v2", f"/chats/{segment(chat_id)}"),
                                   retry=patient, patient=patient)
        return found if isinstance(found, dict) else None

    async def list_messages(self, chat_id: str, *, limit: int, offset: int = 0) -> list[Any]:
        """A chat's messages v3, newest first (Avito answers a list, or an object holding ``messages``)."""
        body = await self.request("GET", await self._account_path("v3", f"/chats/{segment(chat_id)}/messages/"),
                                  params={"limit": limit, "offset": offset}, retry=True)
        found = body.get("messages", []) if isinstance(body, dict) else body
        return found if isinstance(found, list) else []

    async def send_text(self, chat_id: str, text: str, *, guard: Guard | None = None) -> dict[str, Any]:
        """Post a text message v1 (never retried here: the caller decides, see :mod:`avito_gateway.sending`)."""
        sent = await self.request("POST", await self._account_path("v1", f"/chats/{segment(chat_id)}/messages"),
                                  json={"type": "text", "message": {"text": text}}, guard=guard)
        return _message(sent, "send")

    async def upload_image(self, filename: str, data: bytes, content_type: str) -> str:
        """uploadImages v1: the id Avito gave the image."""
        uploaded = await self.request("POST", await self._account_path("v1", "/uploadImages"),
                                      files={"uploadfile[]": (filename, data, content_type)})
        if not isinstance(uploaded, dict) or not uploaded:
            raise AvitoOtherError("Avito's uploadImages answer had no image id", avito_status=200)
        return str(next(iter(uploaded)))

    async def send_image(self, chat_id: str, image_id: str, *, guard: Guard | None = None) -> dict[str, Any]:
        sent = await self.request("POST", await self._account_path("v1", f"/chats/{segment(chat_id)}/messages/image"),
                                  json={"image_id": image_id}, guard=guard)
        return _message(sent, "image send")

    async def mark_read(self, chat_id: str) -> None:
        await self.request("POST", await self._account_path("v1", f"/chats/{segment(chat_id)}/read"), retry=True)

    async def voice_url(self, voice_id: str) -> str | None:
        """getVoiceFiles v1: the voice's download link (Avito's links work for an hour), None if Avito gave none."""
        urls = await self.request("GET", await self._account_path("v1", "/getVoiceFiles"),
                                  params={"voice_ids": voice_id}, retry=True)
        found = (urls.get("voices_urls") or {}).get(voice_id) if isinstance(urls, dict) else None
        return found if isinstance(found, str) and found else None

    async def subscribe(self, url: str) -> Any:
        """Webhook subscription v3 (Avito probes the URL first); returns Avito's answer."""
        return await self.request("POST", "/messenger/v3/webhook", json={"url": url})

    async def subscriptions(self) -> list[Any]:
        answer = await self.request("POST", "/messenger/v1/subscriptions", retry=True)
        found = answer.get("subscriptions", []) if isinstance(answer, dict) else []
        return found if isinstance(found, list) else []

    # --- requests ----------------------------------------------------------
    async def _send(self, method: str, path: str, **kwargs: Any) -> HttpAnswer:
        async with self._slots:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            try:
                return await self.http.request(method, path, **kwargs)
            except HttpFailure as exc:
                if exc.kind == "timeout":
                    error = avito_transport_error("timeout", f"Avito did not answer {method} {path} in time")
                else:
                    error = avito_transport_error("transport", f"Avito unreachable: {exc.name}")
                error.before_request = exc.name in _NOT_SENT
                raise error from None
            finally:
                self.in_flight -= 1

    def _backoff(self, attempt: int) -> float:
        base = min(self.settings.retry_max_wait, self.settings.retry_min_wait * (2.0**attempt))
        return float(base * (0.5 + self._rng.random() / 2))  # jitter: half to full

    def _retry_after(self, response: HttpAnswer) -> float | None:
        """Avito's Retry-After in seconds (or an HTTP date); None when absent or not a sane value
        (``inf``, ``nan``, negative, unparsable): then the gateway's own backoff applies."""
        raw = response.headers.get("Retry-After")
        if raw is None:
            return None
        try:
            wait = float(raw)
        except ValueError:
            try:
                wait = parsedate_to_datetime(raw).timestamp() - self.clock.now()
            except (TypeError, ValueError, OverflowError, IndexError):
                return None
        if not math.isfinite(wait) or wait < 0:
            return None
        return min(wait, RETRY_AFTER_CEILING)

    async def request(self, method: str, path: str, *, retry: bool = False, patient: bool = True,
                      guard: Guard | None = None, **kwargs: Any) -> Any:
        """Call Avito with a token; ``retry`` for calls that are safe to repeat; ``patient=False`` gives up on a
        429 at once instead of waiting out Retry-After; ``guard`` is awaited before each try goes out and bounds
        how long it may take. Returns the JSON body."""
        replayed = False
        attempt = 0
        extra_headers = kwargs.pop("headers", {})
        while True:
            try:
                token = await self.token()
            except AvitoApiError as exc:
                exc.before_request = True
                if retry and exc.retryable and attempt < self.settings.max_retries:
                    await sleep(self.clock, max(self._backoff(attempt), self.tokens.retry_at() - self.clock.now()))
                    attempt += 1
                    continue
                raise
            headers = {"Authorization": f"Bearer {token}", **extra_headers}
            if guard is not None:
                kwargs["timeout"] = await guard()
            try:
                response = await self._send(method, path, headers=headers, **kwargs)
            except AvitoApiError:
                if retry and attempt < self.settings.max_retries:
                    await sleep(self.clock, self._backoff(attempt))
                    attempt += 1
                    continue
                raise
            status = response.status_code
            if status in (401, 403) and not replayed:
                self.tokens.drop(token)  # expired (401, or Avito's 403 variant): fresh token, replay once
                replayed = True
                continue
            if status == 429:
                wait = self._retry_after(response)
                if patient and attempt < self.settings.max_retries and (
                        wait is None or wait <= self.settings.retry_after_max):
                    await sleep(self.clock, wait if wait else self._backoff(attempt))
                    attempt += 1
                    continue
                raise avito_error(429, _json(response), retry_after=wait)
            if status >= 500 and retry and attempt < self.settings.max_retries:
                await sleep(self.clock, self._backoff(attempt))
                attempt += 1
                continue
            if status >= 400:
                raise avito_error(status, _json(response), retry_after=self._retry_after(response))
            return _json(response)


def _message(answer: Any, what: str) -> dict[str, Any]:
    """A sent message as Avito answered it: an object with its ``id``."""
    if not isinstance(answer, dict) or "id" not in answer:
        raise AvitoOtherError(f"Avito's {what} answer had no message id", avito_status=200,
                              details=answer if isinstance(answer, dict) else {"body": answer})
    return answer


def _json(response: HttpAnswer) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text
