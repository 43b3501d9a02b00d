"""Oversized bodies are refused early: by Content-Length before reading, or as soon as the stream passes the limit."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

__all__ = ["BodyLimitMiddleware"]

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class BodyLimitMiddleware:
    """413 in the gateway's error shape. A POST to the webhook receiver (a path ``on_webhook_too_large`` accepts:
    the open plain path or an account's secret path) still answers Avito 200 and is recorded as refused; any
    other path, ``/webhook/avitoXYZ`` or a wrong secret included, gets the 413 and leaves no row behind."""

    def __init__(self, app: Any, *, limit: int, image_limit: int,
                 on_webhook_too_large: Callable[[str, int], Awaitable[bool]]) -> None:
        self.app, self.limit, self.image_limit, self.on_webhook_too_large = app, limit, image_limit, on_webhook_too_large

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        limit = self.image_limit + 64 * 1024 if path == "/api/messages/send/image" else self.limit
        declared = next((int(v) for k, v in scope.get("headers", []) if k == b"content-length" and v.isdigit()), 0)
        if declared > limit:
            await self._refuse(scope, declared, send)
            return
        if scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        size, more = 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:  # a stream without (or lying about) Content-Length
                await self._refuse(scope, size, send)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body, replayed = b"".join(chunks), False

        async def replay() -> MutableMapping[str, Any]:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, size: int, send: Send) -> None:
        path: str = scope["path"]
        if scope["method"] == "POST" and path.startswith("/webhook/avito") and await self.on_webhook_too_large(path, size):
            status, body = 200, b'{"ok":true}'
        else:
            status = 413
            body = (b'{"success":false,"error":"Request body is larger than the gateway accepts","code":"body_too_large",'
                    b'"retryable":false,"retry_after":null}')
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
