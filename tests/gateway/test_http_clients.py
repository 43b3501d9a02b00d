"""The gateway's two outbound clients (aiohttp in production, httpx when a test brings a transport) put the same
request on the wire and report the same answers and failures, so a planted defect on the httpx seam tests the
same gateway that runs in production."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from avito_gateway.http import BodyTooLarge, HttpClient, HttpFailure, http_client
from avito_harness.stack.serve import ServedApp, serve_in_thread

SLOW_SECONDS = 2.0


async def _echo(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answers what it received: method, path, query, the headers that matter, the body; /slow answers late."""
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    if scope["path"] == "/slow":
        await asyncio.sleep(SLOW_SECONDS)
    if scope["path"].startswith("/big"):  # 200 KB, declared (/big) or streamed without a length (/big-stream)
        chunk = b"x" * 20_000
        headers = [] if scope["path"] == "/big-stream" else [(b"content-length", str(len(chunk) * 10).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        for n in range(10):
            await send({"type": "http.response.body", "body": chunk, "more_body": n < 9})
        return
    headers = {k.decode(): v.decode() for k, v in scope["headers"]}
    answer = json.dumps({"method": scope["method"], "path": scope["raw_path"].decode(), "query": scope["query_string"].decode(),
                         "content_type": headers.get("content-type"), "ua": headers.get("user-agent"),
                         "tenant": headers.get("x-tenant"), "body": body.decode("utf-8", "replace")}).encode()
    await send({"type": "http.response.start", "status": 207,
                "headers": [(b"content-type", b"application/json"), (b"retry-after", b"7")]})
    await send({"type": "http.response.body", "body": answer})


@pytest.fixture(scope="module")
def echo() -> Iterator[ServedApp]:
    served = serve_in_thread(_echo, name="echo")
    yield served
    served.stop()


def _clients(base_url: str, timeout: float = 5.0) -> list[HttpClient]:
    headers = {"User-Agent": "gateway-test/1"}
    return [http_client(base_url=base_url, timeout=timeout, max_connections=4, headers=headers),
            http_client(base_url=base_url, timeout=timeout, max_connections=4, headers=headers,
                        transport=httpx.AsyncHTTPTransport())]


async def _both(base_url: str, method: str, path: str, timeout: float = 5.0, call_timeout: float | None = None,
                **kwargs: Any) -> list[Any]:
    """The same call through both clients (``timeout``: the clients' own; ``call_timeout``: this call's whole)."""
    outcomes: list[Any] = []
    for client in _clients(base_url, timeout):
        try:
            answer = await client.request(method, path, timeout=call_timeout, **kwargs)
            outcomes.append((answer.status_code, answer.headers.get("Retry-After"), answer.json()))
        except HttpFailure as exc:
            outcomes.append((exc.kind, exc.name))
        except BodyTooLarge as exc:
            outcomes.append(("too large", exc.limit))
        finally:
            await client.aclose()
    return outcomes


@pytest.mark.parametrize("call", [
    {"method": "POST", "path": "/messenger/v1/accounts/1/chats/u2i-a~b%2Fc/messages",
     "json": {"type": "text", "message": {"text": "Привет, аккумулятор 🔋"}}, "headers": {"X-Tenant": "shop-1"}},
    {"method": "POST", "path": "/token", "data": {"grant_type": "client_credentials", "client_id": "a b&c"}},
    {"method": "GET", "path": "/messenger/v2/accounts/1/chats", "params": {"limit": 5, "unread_only": True}},
])
def test_both_clients_send_the_same_request_and_read_the_same_answer(echo: ServedApp, call: dict[str, Any]) -> None:
    aio, httpx_seam = asyncio.run(_both(echo.url + "/base", **call))
    assert aio == httpx_seam
    status, retry_after, seen = aio
    assert (status, retry_after) == (207, "7")
    assert seen["path"] == "/base" + call["path"]  # as sent: an id's encoded slash stays one path segment
    assert seen["ua"] == "gateway-test/1"


def test_an_unreachable_peer_is_the_same_named_failure_for_both() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]  # nothing listens here once the socket is closed
    assert asyncio.run(_both(f"http://127.0.0.1:{closed}", "GET", "/x")) == [("transport", "ConnectError")] * 2


def test_a_peer_slower_than_the_timeout_is_a_timeout_for_both(echo: ServedApp) -> None:
    outcomes = asyncio.run(_both(echo.url, "GET", "/slow", timeout=0.3))
    assert [kind for kind, *_ in outcomes] == ["timeout", "timeout"]


def test_behind_a_proxy_the_gateway_calls_through_it_unless_no_proxy_names_the_host(
        echo: ServedApp, monkeypatch: pytest.MonkeyPatch) -> None:
    """HTTP_PROXY / NO_PROXY as httpx honoured them: the echo stands in for a company proxy."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    target = f"http://127.0.0.1:{closed}"  # nothing listens there: only the proxy can answer

    async def call() -> Any:
        client = http_client(base_url=target, timeout=5.0, max_connections=2)
        try:
            return (await client.request("GET", "/messenger/v2/accounts/1/chats")).json()
        except HttpFailure as exc:
            return exc.name
        finally:
            await client.aclose()

    monkeypatch.delenv("http_proxy", raising=False)
    monkeypatch.setenv("HTTP_PROXY", echo.url)
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    proxied = asyncio.run(call())
    assert proxied["path"].endswith("/messenger/v2/accounts/1/chats")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    assert asyncio.run(call()) == "ConnectError"


@pytest.mark.parametrize("path", ["/big", "/big-stream"])
def test_an_answer_longer_than_max_bytes_is_refused_by_both_before_it_is_read(echo: ServedApp, path: str) -> None:
    """The image fetch's limit: a declared length over it is refused at once, a stream as soon as it passes it."""
    assert asyncio.run(_both(echo.url, "GET", path, max_bytes=50_000)) == [("too large", 50_000)] * 2

    async def sizes() -> list[int]:
        found = []
        for client in _clients(echo.url):
            found.append(len((await client.request("GET", path, max_bytes=200_000)).content))
            await client.aclose()
        return found

    assert asyncio.run(sizes()) == [200_000, 200_000]  # at the limit: read whole


def test_a_whole_call_bound_ends_a_slow_answer_for_both(echo: ServedApp) -> None:
    """``timeout`` bounds the whole call (a post that must end before its lease could): ReadTimeout for both."""
    outcomes = asyncio.run(_both(echo.url, "GET", "/slow", timeout=5.0, call_timeout=0.3))
    assert outcomes == [("timeout", "ReadTimeout")] * 2
