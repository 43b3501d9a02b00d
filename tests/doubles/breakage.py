"""The ways the catalogue's doubles break our gateway: rewrites of its calls to Avito and n8n, ASGI layers in front
of it, and gateway classes with a planted bug. :mod:`tests.doubles.broken_gateway` puts them together, one double
per defect (or several at once)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx
from fastapi import FastAPI, Request
from fastapi.exception_handlers import request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware

import avito_gateway.ratelimit
from avito_gateway.deps import require_api_key, services

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


# --- the gateway's own behaviour --------------------------------------------------------------------------

class NeverRefuses(avito_gateway.ratelimit.SlidingWindowLimiter):
    def acquire(self, n: int = 1) -> float | None:
        return None


class WindowRestartsOnEveryRequest(avito_gateway.ratelimit.SlidingWindowLimiter):
    """A fixed window that restarts whenever a request comes in, refused or not: steady traffic keeps it shut."""

    def acquire(self, n: int = 1) -> float | None:
        now = self.clock.now()
        with self._lock:
            if self._allowed and now - self._allowed[-1] >= self.window:
                self._allowed.clear()
            if len(self._allowed) + n <= self.limit:
                self._allowed.extend([now] * n)
                return None
            self._allowed[-1] = now  # the bug: a refused request restarts the window
            return self.window


def on_webhook_body(app: Any, refuse: Callable[[bytes], tuple[int, bytes] | None]) -> Any:
    """Webhook deliveries pass ``refuse`` first: an answer from it goes to Avito instead of the gateway's."""
    async def wrapped(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/webhook/avito"):
            await app(scope, receive, send)
            return
        body = await _body(receive)
        answer = refuse(body)
        if answer is not None:
            await _answer(send, *answer)
            return
        await app(scope, _replay(body, receive), send)
    return wrapped


def probe_400(app: Any) -> Any:
    return on_webhook_body(app, lambda body: (400, b'{"error": "empty body"}') if body.strip() == b"{}" else None)


def bad_json_500(app: Any) -> Any:
    def refuse(body: bytes) -> tuple[int, bytes] | None:
        try:
            parsed = json.loads(body)
        except ValueError:
            return 500, b'{"detail": "Internal Server Error"}'
        if not isinstance(parsed, dict) or (parsed and not isinstance(parsed.get("payload"), dict)):
            return 500, b'{"detail": "Internal Server Error"}'
        return None
    return on_webhook_body(app, refuse)


def token_preview(app: Any) -> Any:
    """/api/token shows the first 20 characters of the access token "for debugging"."""
    async def wrapped(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] != "/api/token":
            await app(scope, receive, send)
            return
        start: dict[str, Any] = {}

        async def capture(message: Any) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
                return
            body = json.loads(message.get("body") or b"{}")
            if isinstance(body, dict) and LEAKED.get("token"):
                body["token_preview"] = LEAKED["token"][:20]
            data = json.dumps(body).encode()
            await send({**start, "headers": [(k, str(len(data)).encode() if k == b"content-length" else v)
                                             for k, v in start["headers"]]})
            await send({"type": "http.response.body", "body": data})

        await app(scope, receive, capture)
    return wrapped


async def _body(receive: Any) -> bytes:
    chunks, more = [], True
    while more:
        message = await receive()
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    return b"".join(chunks)


def _replay(body: bytes, receive: Any) -> Any:
    done = False

    async def replay() -> Any:
        nonlocal done
        if done:
            return await receive()
        done = True
        return {"type": "http.request", "body": body, "more_body": False}
    return replay


async def _answer(send: Any, status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})


def open_without_key(app: FastAPI) -> FastAPI:
    async def key_if_any(request: Request) -> None:
        if (await services(request)).settings.api_key:
            await require_api_key(request, request.headers.get("X-API-Key"))
    app.dependency_overrides[require_api_key] = key_if_any
    return app


def cors_any_origin(app: FastAPI) -> Any:
    return CORSMiddleware(app, allow_origins=["*"], allow_credentials=True, allow_methods=["*"], allow_headers=["*"])


def fastapi_422(app: FastAPI) -> FastAPI:
    """FastAPI's own answer to a bad request: 422 {"detail": [...]}, not SPEC's 400 {"success": false, ...}."""
    app.exception_handlers[RequestValidationError] = request_validation_exception_handler
    return app


# --- layers that rewrite the gateway's own answers or requests ------------------------------------------------

Change = Callable[[int, dict[str, Any]], tuple[int, dict[str, Any]]]


def answers_changed(app: Any, method: str, path: str, change: Change) -> Any:
    """The gateway's JSON answers to ``method path`` rewritten by ``change(status, body)``."""
    async def wrapped(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != method or scope["path"] != path:
            await app(scope, receive, send)
            return
        start: dict[str, Any] = {}
        chunks: list[bytes] = []

        async def capture(message: Any) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body"):
                return
            try:
                body = json.loads(b"".join(chunks) or b"{}")
            except ValueError:
                body = None
            status, data = (start["status"], b"".join(chunks)) if not isinstance(body, dict) else (
                lambda s, b: (s, json.dumps(b, ensure_ascii=False).encode()))(*change(start["status"], body))
            headers = [(k, v) for k, v in start["headers"] if k.lower() != b"content-length"]
            await send({**start, "status": status, "headers": [*headers, (b"content-length", str(len(data)).encode())]})
            await send({"type": "http.response.body", "body": data})

        await app(scope, receive, capture)
    return wrapped


def spec_shaped_errors(app: Any) -> Any:
    """A legitimate variant: Avito's errors come back in SPEC's shape only ({success: false, error}), always 400,
    without our code and retryable (SPEC names neither)."""
    def change(status: int, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if status < 400 or status == 429:
            return status, body
        return 400, {"success": False, "error": body.get("error", "")}
    return answers_changed(app, "POST", "/api/messages/send", change)


def errors_without_spec_shape(app: Any) -> Any:
    """Avito's errors come back as {"ok": false, "message": ...}: not SPEC's {"success": false, "error": ...}."""
    def change(status: int, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if status < 400 or status == 429:
            return status, body
        return status, {"ok": False, "message": body.get("error", "")}
    return answers_changed(app, "POST", "/api/messages/send", change)


def _limit() -> tuple[int, float]:
    return int(os.environ.get("RATE_LIMIT_REQUESTS", "100")), float(os.environ.get("RATE_LIMIT_WINDOW", "60"))


def throttles_within_limit(app: Any) -> Any:
    """A legitimate variant: what is over the limit waits for the window instead of a 429; never more than the limit
    passes per window."""
    limit, window = _limit()
    passed: list[float] = []
    lock = asyncio.Lock()

    async def wrapped(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/api/"):
            async with lock:
                loop = asyncio.get_running_loop()
                while len(passed) >= limit and loop.time() - passed[0] < window:
                    await asyncio.sleep(window - (loop.time() - passed[0]) + 0.01)
                    del passed[:len([t for t in passed if loop.time() - t >= window])]
                passed.append(loop.time())
                del passed[:-limit]
        await app(scope, receive, send)
    return wrapped


def holds_forever(app: Any) -> Any:
    """Over its limit, a request is held and the window never reopens: the caller waits until it gives up."""
    limit, _ = _limit()
    served = [0]

    async def wrapped(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/api/chats"):
            served[0] += 1
            if served[0] > limit:
                await asyncio.Event().wait()
        await app(scope, receive, send)
    return wrapped


def requests_changed(app: Any, method: str, path: str,
                     change: Callable[[bytes, dict[str, str]], Awaitable[tuple[int, bytes, dict[str, str]] | None]]) -> Any:
    """``change(body, headers)`` either refuses a request (status, body) or gives the body and headers passed on."""
    async def wrapped(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != method or scope["path"] != path:
            await app(scope, receive, send)
            return
        body = await _body(receive)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        outcome = await change(body, headers)
        if outcome is None:
            await app(scope, _replay(body, receive), send)
            return
        status, new_body, new_headers = outcome
        if status:
            await _answer(send, status, new_body)
            return
        raw = [(k.encode(), v.encode()) for k, v in new_headers.items() if k not in ("content-length",)]
        await app({**scope, "headers": [*raw, (b"content-length", str(len(new_body)).encode())]},
                  _replay(new_body, receive), send)
    return wrapped


def image_by_url(app: Any) -> Any:
    """A legitimate variant: an image send is JSON {chat_id, image_url} (the gateway fetches it); multipart is 422."""
    async def change(body: bytes, headers: dict[str, str]) -> tuple[int, bytes, dict[str, str]] | None:
        if not headers.get("content-type", "").startswith("application/json"):
            return 422, b'{"success": false, "error": "send JSON {chat_id, image_url}"}', {}
        data = json.loads(body)
        async with httpx.AsyncClient(timeout=10) as client:
            image = (await client.get(data["image_url"])).content
        request = httpx.Request("POST", "http://gateway/", data={"chat_id": data["chat_id"]},
                                files={"file": ("image.png", image, "image/png")})
        return 0, request.read(), {**headers, "content-type": request.headers["content-type"]}
    return requests_changed(app, "POST", "/api/messages/send/image", change)


def bulk_as_messages(app: Any) -> Any:
    """A legitimate variant: a bulk send is {"messages": [{chat_id, text}, ...]}; our {chat_ids, text} is 422."""
    async def change(body: bytes, headers: dict[str, str]) -> tuple[int, bytes, dict[str, str]] | None:
        data = json.loads(body or b"{}")
        if "messages" not in data:
            return 422, b'{"success": false, "error": "send {messages: [{chat_id, text}]}"}', {}
        messages = data["messages"]
        ours = {"chat_ids": [m["chat_id"] for m in messages], "text": messages[0]["text"] if messages else ""}
        return 0, json.dumps(ours, ensure_ascii=False).encode(), headers
    return requests_changed(app, "POST", "/api/messages/send/bulk", change)


def read_not_forwarded(app: Any) -> Any:
    """Marking a chat read is answered at once and never reaches Avito."""
    async def wrapped(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"].endswith("/read"):
            await _answer(send, 200, b'{"success": true}')
            return
        await app(scope, receive, send)
    return wrapped


def webhook_answered_late(app: Any) -> Any:
    """Avito's webhook answered only after 3 s (the forward to n8n done first, and n8n is slow)."""
    async def wrapped(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/webhook/avito"):
            body = await _body(receive)
            if body.strip() not in (b"", b"{}"):  # the subscription's probe is answered at once
                await asyncio.sleep(3)
            await app(scope, _replay(body, receive), send)
            return
        await app(scope, receive, send)
    return wrapped


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
