"""Gateways with planted defects, to show that the acceptance run catches them at the right stage.

Run as ``python tests/doubles/broken_gateway.py DEFECT --port N`` with the gateway's usual
environment; each is our gateway with one thing broken:

* ``probe_400``: answers Avito's ``{}`` registration probe with 400.
* ``no_voice_url``: forwards voice messages to n8n without ``voice_url``.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import httpx
import uvicorn

from gateway.app import create_app
from gateway.settings import load_settings


class DropVoiceUrl(httpx.AsyncBaseTransport):
    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content or b"{}")
        if isinstance(body, dict) and isinstance(body.get("media"), dict):
            body["media"]["voice_url"] = None
            request = httpx.Request(request.method, request.url, headers={k: v for k, v in request.headers.items()
                                                                          if k.lower() != "content-length"}, json=body)
        return await self.inner.handle_async_request(request)


def probe_400(app: Any) -> Any:
    async def wrapped(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/webhook/avito"):
            chunks, more = [], True
            while more:
                message = await receive()
                chunks.append(message.get("body", b""))
                more = message.get("more_body", False)
            body = b"".join(chunks)
            if body.strip() == b"{}":
                await send({"type": "http.response.start", "status": 400, "headers": [(b"content-type", b"application/json")]})
                await send({"type": "http.response.body", "body": b'{"error": "empty body"}'})
                return
            replayed = False

            async def replay() -> Any:
                nonlocal replayed
                if replayed:
                    return await receive()
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}

            await app(scope, replay, send)
            return
        await app(scope, receive, send)

    return wrapped


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("defect", choices=["probe_400", "no_voice_url"])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    settings = load_settings(server_port=args.port)
    if args.defect == "no_voice_url":
        app: Any = create_app(settings, n8n_transport=DropVoiceUrl())
    else:
        app = probe_400(create_app(settings))
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")
    return 0


if __name__ == "__main__":
    sys.exit(main())
