"""The gateway's outbound HTTP (Avito, n8n): aiohttp's client, or httpx when a test hands in an httpx transport.

aiohttp because of its cost per call: 16 concurrent sends to the fake Avito cost httpx's AsyncClient about
1,180 us of CPU each and aiohttp's ClientSession about 90 us (bench, this 2-core machine), and the gateway pays
one such call for every send and every forward. httpx stays the seam for tests: a transport (MockTransport, the
planted defects of avito_doubles) replaces the network in one line; given one, the same calls go through httpx,
with the same answers and the same failure names (httpx's words, which operators see in errors and logs).
"""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp
import httpx
from yarl import URL

__all__ = ["BodyTooLarge", "HttpAnswer", "HttpClient", "HttpFailure", "http_client"]

Files = dict[str, tuple[str, bytes, str]]


@dataclass(frozen=True)
class HttpAnswer:
    status_code: int
    headers: Mapping[str, str]  # case-insensitive
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return json.loads(self.content)


class HttpFailure(Exception):
    """No answer: ``kind`` is ``timeout`` or ``transport``; ``name`` says what happened (ConnectError, ...)."""

    def __init__(self, kind: str, name: str) -> None:
        super().__init__(name)
        self.kind, self.name = kind, name


class BodyTooLarge(Exception):
    """The answer's body is (or says it is) longer than the caller's ``max_bytes``; it was not read."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"answer longer than {limit} bytes")
        self.limit = limit


class HttpClient(Protocol):
    async def request(self, method: str, url: str, *, headers: Mapping[str, str] | None = None, json: Any = None,
                      data: Mapping[str, str] | None = None, params: Mapping[str, Any] | None = None,
                      files: Files | None = None, max_bytes: int | None = None,
                      timeout: float | None = None) -> HttpAnswer:
        """One call; ``max_bytes``: read at most this much of the answer, else :class:`BodyTooLarge`;
        ``timeout``: the whole call (connecting, sending, the answer) ends within it, a ``ReadTimeout``."""
        ...

    async def aclose(self) -> None: ...


def http_client(*, timeout: float, max_connections: int, base_url: str = "", headers: Mapping[str, str] | None = None,
                transport: httpx.AsyncBaseTransport | None = None) -> HttpClient:
    if transport is not None:
        return HttpxClient(base_url, timeout, max_connections, dict(headers or {}), transport)
    return AiohttpClient(base_url, timeout, max_connections, dict(headers or {}))


def _with_json(headers: Mapping[str, str] | None, value: Any) -> tuple[dict[str, str], bytes | None]:
    """The headers to send, and ``value`` as JSON the way httpx sends it (compact, UTF-8): the bytes on the wire
    do not depend on the client."""
    sent = dict(headers or {})
    if value is None:
        return sent, None
    sent.setdefault("Content-Type", "application/json")
    return sent, json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


def _param(value: Any) -> str:
    if value is True or value is False:
        return "true" if value else "false"
    return "" if value is None else str(value)


CHUNK = 64 * 1024


def _check_declared(headers: Mapping[str, str], limit: int) -> None:
    declared = headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(limit)


async def _read_at_most(chunks: AsyncIterator[bytes], limit: int) -> bytes:
    """The body, read chunk by chunk; :class:`BodyTooLarge` as soon as it passes ``limit`` (a stream without, or
    lying about, its length)."""
    read: list[bytes] = []
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(limit)
        read.append(chunk)
    return b"".join(read)


#: aiohttp's failures in httpx's words (the first class that matches names it).
_FAILURE_NAMES: tuple[tuple[type[BaseException], str, str], ...] = (
    (aiohttp.ConnectionTimeoutError, "timeout", "ConnectTimeout"),
    (asyncio.TimeoutError, "timeout", "ReadTimeout"),
    (aiohttp.ClientConnectorError, "transport", "ConnectError"),
    (aiohttp.ServerDisconnectedError, "transport", "RemoteProtocolError"),
    (aiohttp.ClientPayloadError, "transport", "RemoteProtocolError"),
    (aiohttp.ClientResponseError, "transport", "RemoteProtocolError"),
    (aiohttp.InvalidURL, "transport", "UnsupportedProtocol"),
    (aiohttp.ClientOSError, "transport", "ReadError"),
)


class AiohttpClient:
    """One ClientSession, made on first use inside the running loop (a session belongs to its loop)."""

    def __init__(self, base_url: str, timeout: float, max_connections: int, headers: dict[str, str]) -> None:
        self.base_url, self.max_connections, self.headers = base_url.rstrip("/"), max_connections, headers
        self.timeout = aiohttp.ClientTimeout(total=None, connect=timeout, sock_connect=timeout, sock_read=timeout)
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._proxies: dict[tuple[str, str], str | None] = {}

    def _proxy(self, target: URL) -> str | None:
        """HTTP(S)_PROXY and NO_PROXY apply as they did with httpx (a gateway behind a company proxy), read once per
        host: aiohttp's own ``trust_env`` reads the environment again on every call (+0.6 ms each on the bench)."""
        key = (target.scheme, target.host or "")
        if key not in self._proxies:
            proxy = urllib.request.getproxies().get(target.scheme)
            self._proxies[key] = None if not proxy or urllib.request.proxy_bypass(key[1]) else proxy
        return self._proxies[key]

    def _open(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._session is None or self._loop is not loop:
            # idle connections are dropped before the 5 s after which uvicorn-served peers close them: a send on a
            # connection the peer is closing would be an unknown outcome, checked and retried
            connector = aiohttp.TCPConnector(limit=self.max_connections, keepalive_timeout=4)
            self._session = aiohttp.ClientSession(connector=connector, timeout=self.timeout, headers=self.headers,
                                                  auto_decompress=True)
            self._loop = loop
        return self._session

    async def request(self, method: str, url: str, *, headers: Mapping[str, str] | None = None, json: Any = None,
                      data: Mapping[str, str] | None = None, params: Mapping[str, Any] | None = None,
                      files: Files | None = None, max_bytes: int | None = None,
                      timeout: float | None = None) -> HttpAnswer:
        sent_headers, content = _with_json(headers, json)
        body: Any = data if content is None else content
        if files is not None:
            form = aiohttp.FormData()
            for name, (filename, content, content_type) in files.items():
                form.add_field(name, content, filename=filename, content_type=content_type)
            body = form
        # a base URL's paths are quoted by the caller (chat ids as one segment): sent as given, not re-quoted
        target = URL(self.base_url + url, encoded=True) if self.base_url else URL(url)
        query = {k: _param(v) for k, v in (params or {}).items()} or None
        try:
            whole = None if timeout is None else aiohttp.ClientTimeout(
                total=timeout, connect=self.timeout.connect, sock_connect=self.timeout.sock_connect,
                sock_read=self.timeout.sock_read)
            async with self._open().request(method, target, headers=sent_headers, data=body, params=query,
                                            proxy=self._proxy(target), allow_redirects=False,
                                            timeout=whole or self.timeout) as response:
                if max_bytes is None:
                    return HttpAnswer(response.status, response.headers, await response.read())
                _check_declared(response.headers, max_bytes)
                return HttpAnswer(response.status, response.headers,
                                  await _read_at_most(response.content.iter_chunked(CHUNK), max_bytes))
        except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
            kind, name = next(((k, n) for cls, k, n in _FAILURE_NAMES if isinstance(exc, cls)),
                              ("transport", type(exc).__name__))
            raise HttpFailure(kind, name) from exc

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class HttpxClient:
    """The test seam: the same calls through httpx and the transport a test gave."""

    def __init__(self, base_url: str, timeout: float, max_connections: int, headers: dict[str, str],
                 transport: httpx.AsyncBaseTransport) -> None:
        limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        self.http = httpx.AsyncClient(base_url=base_url.rstrip("/"), timeout=timeout, transport=transport,
                                      limits=limits, headers=headers)

    async def request(self, method: str, url: str, *, headers: Mapping[str, str] | None = None, json: Any = None,
                      data: Mapping[str, str] | None = None, params: Mapping[str, Any] | None = None,
                      files: Files | None = None, max_bytes: int | None = None,
                      timeout: float | None = None) -> HttpAnswer:
        sent_headers, content = _with_json(headers, json)
        try:
            async with asyncio.timeout(timeout):
                request = self.http.build_request(method, url, headers=sent_headers, data=data, params=params,
                                                  files=files, content=content)
                response = await self.http.send(request, stream=True)
                try:
                    if max_bytes is None:
                        body = await response.aread()
                    else:
                        _check_declared(response.headers, max_bytes)
                        body = await _read_at_most(response.aiter_bytes(CHUNK), max_bytes)
                finally:
                    await response.aclose()
        except TimeoutError as exc:
            raise HttpFailure("timeout", "ReadTimeout") from exc
        except httpx.TimeoutException as exc:
            raise HttpFailure("timeout", type(exc).__name__) from exc
        except (httpx.TransportError, httpx.InvalidURL) as exc:
            raise HttpFailure("transport", type(exc).__name__) from exc
        return HttpAnswer(response.status_code, response.headers, body)

    async def aclose(self) -> None:
        await self.http.aclose()
