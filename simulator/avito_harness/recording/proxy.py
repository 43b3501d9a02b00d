"""``avito-harness record``: a proxy the gateway points at as its Avito base URL, recording every call.

Each call is forwarded to the upstream (Avito, or the fake Avito in tests) as it came, and the request with
its answer is written to the recording (:mod:`.har`: secrets masked, personal data replaced with
``--anonymize``). A webhook subscription passing through (``{"url": ...}`` to ``/messenger/*/webhook``) is
rewritten to the proxy's own ``/_webhook/N`` (``public_url`` is where Avito can reach the proxy), so the
webhooks Avito delivers pass the proxy too, are recorded with their timing, and go on to the URL the gateway
subscribed (or ``webhook_to``).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from avito_harness.fakes.clock import Clock
from avito_harness.recording.har import Exchange, HarWriter

__all__ = ["RecordingProxy", "recording_app"]

HOP_BY_HOP = {"host", "content-length", "connection", "keep-alive", "transfer-encoding", "accept-encoding",
              "content-encoding", "upgrade", "te", "trailer", "proxy-authorization", "proxy-connection"}
SUBSCRIBE_SUFFIXES = ("/webhook",)


@dataclass
class RecordingProxy:
    writer: HarWriter
    upstream: str
    public_url: str  # the proxy as Avito reaches it (its webhooks come here)
    webhook_to: str | None = None  # where webhooks go on to (default: the URL the gateway subscribed)
    timeout: float = 60.0
    targets: list[str] = field(default_factory=list)  # /_webhook/N -> the subscribed URL
    clock: Clock = field(default_factory=Clock)  # the recording's times: real time (what Avito did, when)

    def _forward_headers(self, request: Request) -> list[tuple[str, str]]:
        return [(k, v) for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP]

    def _rewrite_subscription(self, method: str, path: str, body: bytes) -> bytes:
        if method != "POST" or not path.rstrip("/").endswith(SUBSCRIBE_SUFFIXES):
            return body
        try:
            doc = json.loads(body)
        except ValueError:
            return body
        if not isinstance(doc, dict) or not isinstance(doc.get("url"), str):
            return body
        self.targets.append(doc["url"])
        doc["url"] = f"{self.public_url.rstrip('/')}/_webhook/{len(self.targets) - 1}"
        return json.dumps(doc).encode()

    async def _call(self, kind: str, request: Request, url: str, body: bytes, extra: dict[str, Any]) -> Response:
        headers = self._forward_headers(request)
        started, clock = self.clock.now(), time.perf_counter()
        async with httpx.AsyncClient(timeout=self.timeout) as client:
            try:
                answer = await client.request(request.method, url, content=body, headers=headers)
                status, answer_headers, content = answer.status_code, list(answer.headers.items()), answer.content
            except httpx.HTTPError as exc:
                status, answer_headers = 502, [("content-type", "application/json")]
                content = json.dumps({"error": f"the recording proxy could not reach {url}: {exc!r}"}).encode()
                extra = {**extra, "_upstream_failed": True}
        self.writer.add(Exchange(kind, request.method, url, list(request.headers.items()), body, status,
                                 answer_headers, content, started, time.perf_counter() - clock, extra))
        kept = [(k, v) for k, v in answer_headers if k.lower() not in HOP_BY_HOP]
        return Response(content, status_code=status, headers=dict(kept))

    async def avito(self, request: Request) -> Response:
        body = self._rewrite_subscription(request.method, request.url.path, await request.body())
        query = f"?{request.url.query}" if request.url.query else ""
        return await self._call("avito", request, f"{self.upstream.rstrip('/')}{request.url.path}{query}", body, {})

    async def webhook(self, request: Request) -> Response:
        index = int(request.path_params["n"])
        if not 0 <= index < len(self.targets) and not self.webhook_to:
            return Response(json.dumps({"error": "no subscription for this webhook path"}), status_code=404,
                            media_type="application/json")
        target = self.webhook_to or self.targets[index]
        return await self._call("webhook", request, target, await request.body(), {})


def recording_app(proxy: RecordingProxy) -> Starlette:
    methods = ["GET", "POST", "PUT", "PATCH", "DELETE"]
    return Starlette(routes=[Route("/_webhook/{n:int}", proxy.webhook, methods=["POST"]),
                             Route("/{path:path}", proxy.avito, methods=methods)])
