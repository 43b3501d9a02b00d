"""Gateways that attack the judge rather than get Avito wrong: the harness must stay bounded and honest.

Run as ``python tests/doubles/hostile_gateway.py MODE --port N`` with the gateway's usual environment. Each is
our gateway with a hostile layer in front:

* ``trickle``: every ``/api/`` answer sends its headers, then one byte every half second;
* ``huge``: ``GET /api/chats`` answers 100 MB;
* ``noisy``: prints bytes that are not UTF-8, escape sequences (clear screen, a forged summary line, an OSC 8
  link, concealed text) and more than 64 KB before it serves, and its send errors carry escape sequences;
* ``huge_limit``: ``/info`` announces 1e9 requests a second;
* ``pid FILE``: writes its process id to FILE, then serves (a wrapper script's child, to check it is stopped);
* ``needs_redis``: keeps a counter in Redis (``REDIS_URL``): without one it exits, saying so; ``/info`` shows
  the count, so a test sees Redis was really used.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import sys
from typing import Any

import uvicorn

from avito_gateway.app import create_app
from avito_gateway.settings import load_settings

ESCAPES = "\x1b[2J\x1b[H43 passed, 0 failed\x1b]8;;https://attacker.example\x07click\x1b]8;;\x07\x1b[8mhidden\x1b[0m"

Scope = dict[str, Any]


def _headers(status: int, size: int | None = None, kind: bytes = b"application/json") -> dict[str, Any]:
    headers = [(b"content-type", kind)] + ([(b"content-length", str(size).encode())] if size is not None else [])
    return {"type": "http.response.start", "status": status, "headers": headers}


def hostile(app: Any, mode: str) -> Any:
    async def wrapped(scope: Scope, receive: Any, send: Any) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if mode == "trickle" and path.startswith("/api/"):
            body = b'{"success": true, "chats": []}'
            await send(_headers(200, len(body)))
            for byte in body:
                await send({"type": "http.response.body", "body": bytes([byte]), "more_body": True})
                await asyncio.sleep(0.5)
            await send({"type": "http.response.body", "body": b""})
            return
        if mode == "huge" and path == "/api/chats":
            chunk, total = b"x" * 1_000_000, 100
            await send(_headers(200, len(chunk) * total, b"text/plain"))
            for n in range(total):
                await send({"type": "http.response.body", "body": chunk, "more_body": n < total - 1})
            return
        if mode == "huge_limit" and path == "/info":
            body = json.dumps({"rate_limit_requests": 1e9, "rate_limit_window": 1, "max_connections": 20,
                               "avito_user_id": 100000001}).encode()
            await send(_headers(200, len(body)))
            await send({"type": "http.response.body", "body": body})
            return
        if mode == "needs_redis" and path == "/info":
            body = json.dumps({"rate_limit_requests": 60, "rate_limit_window": 1, "max_connections": 20,
                               "avito_user_id": 100000001, "redis_starts": _redis("GET", "starts").decode()}).encode()
            await send(_headers(200, len(body)))
            await send({"type": "http.response.body", "body": body})
            return
        if mode == "noisy" and path == "/api/messages/send":
            body = f"send failed {ESCAPES}".encode()
            await send(_headers(500, len(body), b"text/plain"))
            await send({"type": "http.response.body", "body": body})
            return
        await app(scope, receive, send)

    return wrapped


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["trickle", "huge", "noisy", "huge_limit", "pid", "needs_redis"])
    parser.add_argument("pid_file", nargs="?")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    if args.mode == "pid":
        with open(args.pid_file, "w", encoding="utf-8") as out:
            out.write(str(os.getpid()))
    if args.mode == "noisy":
        out = sys.stdout.buffer
        out.write((b"x" * 1000 + b"\n") * 70)  # more than a pipe holds: only a reader that drains keeps it going
        out.write(b"starting \xff\xfe\xc3( not utf-8\n" + ESCAPES.encode() + b"\n")
        out.flush()
    if args.mode == "needs_redis":
        _redis("INCR", "starts")  # exits, naming REDIS_URL, when there is no Redis
    app = create_app(load_settings(server_port=args.port))
    uvicorn.run(hostile(app, args.mode), host="127.0.0.1", port=args.port, log_level="warning")


def _redis(*command: str) -> bytes:
    """One command to the Redis at REDIS_URL (RESP by hand: the test needs no client library)."""
    url = os.environ.get("REDIS_URL")
    if not url:
        print("REDIS_URL is not set: this gateway keeps its token and limits in Redis", flush=True)
        sys.exit(3)
    host, port = url.removeprefix("redis://").split("/")[0].split(":")
    request = f"*{len(command)}\r\n" + "".join(f"${len(c)}\r\n{c}\r\n" for c in command)
    with socket.create_connection((host, int(port)), timeout=5) as conn:
        conn.sendall(request.encode())
        return conn.recv(256)
    return 0


if __name__ == "__main__":
    sys.exit(main())
