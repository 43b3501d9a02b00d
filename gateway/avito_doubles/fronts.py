"""Ways to break the gateway from in front: ASGI layers around its app that change what it answers (webhooks,
/api/token, errors, /health), refuse or rewrite requests (keys, bodies), or hold them (limits)."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.exception_handlers import request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware

from avito_doubles.calls import LEAKED
from avito_gateway.deps import require_api_key, services

__all__ = ["NOW", "always_healthy", "answers_changed", "bad_json_500", "bulk_as_messages", "cors_any_origin", "errors_without_spec_shape", "fastapi_422", "holds_forever", "idempotency_forgets", "image_by_url", "key_prefix_accepted", "on_webhook_body", "open_without_key", "per_endpoint_limit", "probe_400", "read_not_forwarded", "requests_changed", "spec_shaped_errors", "throttles_within_limit", "token_preview", "webhook_answered_late"]

#: The gateway's clock for the layers that count time: the wall clock, or the harness's virtual clock when the
#: double runs in-process (set by Double.in_process).
NOW: list[Callable[[], float]] = [time.monotonic]


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


async def _answer(send: Any, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), *(headers or [])]})
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
            status, data = start["status"], b"".join(chunks)
            if isinstance(body, dict):
                status, changed = change(start["status"], body)
                data = json.dumps(changed, ensure_ascii=False).encode()
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


def always_healthy(app: Any) -> Any:
    """/health answers 200 healthy whatever the gateway could or could not do (a liveness probe, not health)."""
    async def wrapped(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == "/health":
            await _answer(send, 200, b'{"status": "healthy"}')
            return
        await app(scope, receive, send)
    return wrapped


def key_prefix_accepted(app: Any) -> Any:
    """X-API-Key compared by its first 8 characters (a "fast path" that compares a prefix)."""
    key = os.environ.get("API_KEY", "")

    async def wrapped(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/api/"):
            headers = [(k, key.encode() if k.lower() == b"x-api-key" and key and v.decode("latin-1")[:8] == key[:8]
                        else v) for k, v in scope["headers"]]
            scope = {**scope, "headers": headers}
        await app(scope, receive, send)
    return wrapped


def per_endpoint_limit(app: Any) -> Any:
    """The limit counted per operation: the chats list and a chat's history each get the whole limit, so twice
    the limit reaches Avito in one window."""
    limit, window = _limit()
    passed: dict[str, list[float]] = {}

    async def wrapped(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/api/chats"):
            operation = "history" if scope["path"].endswith("/messages") else scope["path"]
            now = NOW[0]()
            times = [t for t in passed.get(operation, []) if now - t < window]
            if len(times) >= limit:
                await _answer(send, 429, b'{"success": false, "error": "Rate limit exceeded, try again later"}',
                              [(b"retry-after", str(int(window)).encode())])
                return
            passed[operation] = [*times, now]
        await app(scope, receive, send)
    return wrapped


def idempotency_forgets(app: Any) -> Any:
    """An Idempotency-Key remembered for 10 s: n8n's retry after its 30 s timeout posts again."""
    async def wrapped(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            bucket = str(int(NOW[0]() // 10)).encode()
            scope = {**scope, "headers": [(k, v + b"@" + bucket if k.lower() == b"idempotency-key" else v)
                                          for k, v in scope["headers"]]}
        await app(scope, receive, send)
    return wrapped
