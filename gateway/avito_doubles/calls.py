"""Ways to break the gateway's own calls: transports in front of its calls to Avito and its forwards to n8n
(rewrites on the way out or back, retries of their own, buffers). :mod:`avito_doubles.catalogue` stacks
them into doubles."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx

__all__ = ["After", "Before", "BlindRetry", "DedupesByText", "LEAKED", "failure_is_success", "forbidden_is_final", "remember_token", "Layer", "NewestFirstBacklog", "RetriesTooSoon", "Rewrite", "TwiceToN8n", "forwarded", "ids_swapped", "mangled_text", "no_image_url", "no_voice_url", "seller_as_client_name", "seller_unmarked", "send_without_type", "timestamp_in_ms", "token_by_basic", "truncated_send", "truncated_text", "version"]

Before = Callable[[httpx.Request], httpx.Request]
After = Callable[[httpx.Request, httpx.Response], Awaitable[httpx.Response]]


def _rebuilt(request: httpx.Request, *, url: str | None = None, content: bytes | None = None,
             headers: dict[str, str] | None = None) -> httpx.Request:
    merged = {k: v for k, v in request.headers.items() if k.lower() != "content-length"}
    merged.update(headers or {})
    return httpx.Request(request.method, url or str(request.url), headers=merged,
                         content=request.content if content is None else content)


def _json_body(request: httpx.Request) -> Any:
    try:
        return json.loads(request.content or b"null")
    except ValueError:
        return None


class Layer(httpx.AsyncBaseTransport):
    """A transport in front of another (the network by default): layers stack, so one double can break several
    things of the gateway's calls at once."""

    def __init__(self, inner: httpx.AsyncBaseTransport | None = None) -> None:
        self.inner = inner or httpx.AsyncHTTPTransport()


class Rewrite(Layer):
    """The gateway's own calls (to Avito or n8n), changed on the way out (``before``) or back (``after``)."""

    def __init__(self, before: Before | None = None, after: After | None = None,
                 inner: httpx.AsyncBaseTransport | None = None) -> None:
        super().__init__(inner)
        self.before, self.after = before, after

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.before is not None:
            request = self.before(request)
        response = await self.inner.handle_async_request(request)
        if self.after is not None:
            await response.aread()
            response = await self.after(request, response)
        return response


def _changed(response: httpx.Response, status: int | None = None, content: bytes | None = None) -> httpx.Response:
    headers = {k: v for k, v in response.headers.items() if k.lower() not in ("content-length", "content-encoding")}
    return httpx.Response(status or response.status_code, headers=headers,
                          content=response.content if content is None else content)


# --- Avito side ---------------------------------------------------------------------------------------------

def token_by_basic(request: httpx.Request) -> httpx.Request:
    """Client id and secret in ``Authorization: Basic``, as many OAuth libraries do by default."""
    if not request.url.path.rstrip("/").endswith("/token"):
        return request
    form = dict(parse_qsl(request.content.decode()))
    pair = f"{form.pop('client_id', '')}:{form.pop('client_secret', '')}".encode()
    return _rebuilt(request, content=urlencode(form).encode(),
                    headers={"Authorization": "Basic " + base64.b64encode(pair).decode()})


def version(old: str, new: str, suffix: str) -> Before:
    """Call one operation on another API version."""
    def before(request: httpx.Request) -> httpx.Request:
        path = request.url.path
        if path.startswith(old) and path.rstrip("/").endswith(suffix):
            return _rebuilt(request, url=str(request.url.copy_with(path=new + path[len(old):])))
        return request
    return before


def send_without_type(request: httpx.Request) -> httpx.Request:
    body = _json_body(request)
    if request.method == "POST" and request.url.path.endswith("/messages") and isinstance(body, dict):
        body.pop("type", None)
        return _rebuilt(request, content=json.dumps(body).encode())
    return request


async def forbidden_is_final(request: httpx.Request, response: httpx.Response) -> httpx.Response:
    """Only 401 means "token expired" to this gateway: Avito's 403 variant comes back to n8n as an error."""
    return _changed(response, status=400) if response.status_code == 403 else response


class BlindRetry(Layer):
    """Sends retried at once, up to 3 times, after a lost answer or a 5xx: no look at the chat first."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        send = request.method == "POST" and request.url.path.endswith("/messages")
        for attempt in range(4):
            try:
                response = await self.inner.handle_async_request(_rebuilt(request))
                await response.aread()
            except httpx.TransportError:
                if not send or attempt == 3:
                    raise
                continue
            if not send or response.status_code < 500 or attempt == 3:
                return response
        raise AssertionError("unreachable")


LEAKED: dict[str, str] = {}


async def remember_token(request: httpx.Request, response: httpx.Response) -> httpx.Response:
    if request.url.path.rstrip("/").endswith("/token") and response.status_code == 200:
        LEAKED["token"] = str(response.json().get("access_token", ""))
    return response


class RetriesTooSoon(Layer):
    """Avito's 429 on a send retried after a fixed 0.1 s, whatever Retry-After said (a backoff of its own)."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(_rebuilt(request))
        send = request.method == "POST" and request.url.path.endswith("/messages")
        if send and response.status_code == 429 and response.headers.get("Retry-After"):
            await response.aread()
            await asyncio.sleep(0.1)
            response = await self.inner.handle_async_request(_rebuilt(request))
        return response


# --- n8n side -----------------------------------------------------------------------------------------------

def forwarded(change: Callable[[dict[str, Any]], None]) -> Before:
    """Change the normalized message on its way to n8n."""
    def before(request: httpx.Request) -> httpx.Request:
        body = _json_body(request)
        if isinstance(body, dict) and isinstance(body.get("media"), dict):
            change(body)
            return _rebuilt(request, content=json.dumps(body, ensure_ascii=False).encode(),
                            headers={"content-type": "application/json"})
        return request
    return before


def no_voice_url(m: dict[str, Any]) -> None:
    m["media"]["voice_url"] = None


def no_image_url(m: dict[str, Any]) -> None:
    m["media"]["images"] = [{"url": None}] if m["media"].get("images") else []


def seller_as_client_name(m: dict[str, Any]) -> None:
    m["client_name"] = "Аккумуляторы 24"  # the shop's own name, not the customer's


def seller_unmarked(m: dict[str, Any]) -> None:
    m["meta"]["author_role"] = "customer"


class TwiceToN8n(Layer):
    """Every message posted to n8n twice (no delivery bookkeeping)."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        first = await self.inner.handle_async_request(_rebuilt(request))
        await first.aread()
        second = await self.inner.handle_async_request(_rebuilt(request))
        await second.aread()
        return first


async def failure_is_success(request: httpx.Request, response: httpx.Response) -> httpx.Response:
    """An n8n failure is logged and forgotten: the message counts as delivered."""
    return _changed(response, status=200, content=b"{}") if response.status_code >= 500 else response


def mangled_text(m: dict[str, Any]) -> None:
    """Text "cleaned" on the way: characters outside the basic plane dropped, HTML entities decoded."""
    import html

    m["text"] = html.unescape("".join(c for c in str(m.get("text") or "") if ord(c) < 0x10000))


def ids_swapped(m: dict[str, Any]) -> None:
    """external_user_id holds our own account (the shop), not the customer who wrote."""
    m["external_user_id"] = str((m.get("meta") or {}).get("user_id"))


class DedupesByText(Layer):
    """A forward whose chat and text equal the last one's is "a duplicate" and dropped (answered 200 here)."""

    def __init__(self, inner: httpx.AsyncBaseTransport | None = None) -> None:
        super().__init__(inner)
        self.last: dict[str, str] = {}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = _json_body(request)
        if isinstance(body, dict) and isinstance(body.get("media"), dict):
            chat, text = str(body.get("external_chat_id")), str(body.get("text"))
            if self.last.get(chat) == text:
                return httpx.Response(200, json={}, request=request)
            self.last[chat] = text
        return await self.inner.handle_async_request(request)


def truncated_text(m: dict[str, Any]) -> None:
    """Text cut to 500 characters on the way to n8n (a column or a log line's size)."""
    m["text"] = str(m.get("text") or "")[:500]


def truncated_send(request: httpx.Request) -> httpx.Request:
    """A send's text cut to 500 characters on the way to Avito."""
    body = _json_body(request)
    if request.method == "POST" and request.url.path.endswith("/messages") and isinstance(body, dict):
        text = (body.get("message") or {}).get("text")
        if isinstance(text, str):
            body["message"]["text"] = text[:500]
            return _rebuilt(request, content=json.dumps(body, ensure_ascii=False).encode())
    return request


def timestamp_in_ms(m: dict[str, Any]) -> None:
    """Avito's ``created`` (seconds) read as milliseconds: the message is dated January 1970."""
    created = (((m.get("meta") or {}).get("raw") or {}).get("payload") or {}).get("value", {}).get("created")
    if isinstance(created, int | float):
        m["timestamp"] = datetime.fromtimestamp(created / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S")


class NewestFirstBacklog(Layer):
    """A forward n8n refuses is answered "delivered" to the gateway and kept in a backlog of its own, which is
    retried every half second newest first (a stack, not a queue): what waited arrives in reverse order."""

    def __init__(self, inner: httpx.AsyncBaseTransport | None = None) -> None:
        super().__init__(inner)
        self.backlog: list[httpx.Request] = []
        self.retrying: asyncio.Task[None] | None = None

    async def _delivered(self, request: httpx.Request) -> bool:
        try:
            response = await self.inner.handle_async_request(_rebuilt(request))
            await response.aread()
        except httpx.TransportError:
            return False
        return response.status_code < 500

    async def _retry(self) -> None:
        while self.backlog:
            await asyncio.sleep(0.5)
            while self.backlog and await self._delivered(self.backlog[-1]):
                self.backlog.pop()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await request.aread()
        if not self.backlog and await self._delivered(request):
            return httpx.Response(200, json={}, request=request)
        self.backlog.append(request)
        if self.retrying is None or self.retrying.done():
            self.retrying = asyncio.get_running_loop().create_task(self._retry())
        return httpx.Response(200, json={}, request=request)
