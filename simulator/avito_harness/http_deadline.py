"""An httpx transport with a deadline for the whole exchange and a cap on the answer's size.

httpx's timeouts are per socket operation, so an answer that trickles in one byte every half second never
times out. :class:`DeadlineTransport` gives each request one deadline (connect, send, headers and body all end
by it: every socket read and write is cut to what is left) and reads the body up to a cap. The judge holds a
gateway under test to it; the fake Avito holds a webhook receiver to Avito's 2 s the same way.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from contextvars import ContextVar
from typing import Any

import httpcore
import httpx

__all__ = ["AnswerTooLarge", "DeadlineTransport"]

#: The monotonic time the request under way must be done by (read by the network streams below).
_DEADLINE: ContextVar[float] = ContextVar("avito_harness_deadline", default=math.inf)


class AnswerTooLarge(httpx.TransportError):
    """The answer was larger than the cap."""


class _DeadlineStream(httpcore.NetworkStream):
    """A socket stream whose every read and write ends by the request's deadline."""

    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    @staticmethod
    def budget(timeout: float | None, error: type[Exception]) -> float:
        remaining = _DEADLINE.get() - time.monotonic()
        if remaining <= 0:
            raise error("deadline")
        return remaining if timeout is None else min(timeout, remaining)

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, self.budget(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, self.budget(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(self, ssl_context: Any, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore.NetworkStream:
        return _DeadlineStream(self._inner.start_tls(ssl_context, server_hostname,
                                                     self.budget(timeout, httpcore.ConnectTimeout)))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    def __init__(self) -> None:
        self._inner = httpcore.SyncBackend()

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        budget = _DeadlineStream.budget(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._inner.connect_tcp(host, port, budget, local_address, socket_options))

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        budget = _DeadlineStream.budget(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._inner.connect_unix_socket(path, budget, socket_options))

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class DeadlineTransport(httpx.HTTPTransport):
    """Each request must be answered, body included, within ``total`` seconds (``deadline()`` may say sooner) and
    in at most ``max_bytes``; a timeout is httpx's ``ReadTimeout`` (or what ``timed_out`` makes of it)."""

    def __init__(self, *, total: float, max_bytes: int) -> None:
        super().__init__(trust_env=False)
        # httpx builds its pool without a way to pass a network backend: the pool is rebuilt with ours (a test
        # holds this to the deadline, so an httpx that renamed the attribute fails loudly, not silently)
        self._pool = httpcore.ConnectionPool(network_backend=_DeadlineBackend(), max_connections=20,
                                             max_keepalive_connections=10, keepalive_expiry=4.0)
        self.total, self.max_bytes = total, max_bytes

    def deadline(self, started: float) -> float:
        return started + self.total

    def timed_out(self, request: httpx.Request, where: str) -> Exception:
        return httpx.ReadTimeout(f"{where}: no complete answer within {self.total:g} s", request=request)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        where = f"{request.method} {request.url.path}"
        token = _DEADLINE.set(self.deadline(time.monotonic()))
        try:
            response = super().handle_request(request)
            body = self._read_capped(response, where)
        except httpx.TimeoutException:
            raise self.timed_out(request, where) from None
        finally:
            _DEADLINE.reset(token)
        return httpx.Response(response.status_code, headers=response.headers, stream=httpx.ByteStream(body),
                              extensions=response.extensions, request=request)

    def _read_capped(self, response: httpx.Response, where: str) -> bytes:
        chunks, size = [], 0
        stream = response.stream
        assert isinstance(stream, httpx.SyncByteStream)
        try:
            for chunk in stream:
                size += len(chunk)
                if size > self.max_bytes:
                    raise AnswerTooLarge(f"{where}: the answer is larger than {self.max_bytes:,} bytes"
                                         f"{self.cap_hint}; reading stopped there")
                chunks.append(chunk)
        finally:
            stream.close()
        return b"".join(chunks)

    cap_hint = ""
