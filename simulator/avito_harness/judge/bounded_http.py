"""HTTP to a gateway under test, bounded: a deadline for the whole answer, a cap on its size.

A gateway may be hostile or just broken: send one byte every half second (httpx's timeouts are per socket
read, so such an answer never times out), answer 100 MB, or close a keep-alive connection after a 500. Every
request the judge sends it goes through :func:`bounded_client`: the whole exchange (connect, send, headers and
body) must finish by one deadline, the earlier of the request deadline and the scenario's; the body is read
up to a cap; an idempotent request whose connection broke before any answer is tried once more on a fresh one.
Each limit, when hit, is named with the option that sets it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, NoReturn

import httpcore
import httpx

from avito_harness.judge.verdict import CannotJudge, Category

__all__ = ["AnswerTooLarge", "Bounds", "RequestDeadlineHit", "ScenarioDeadlineHit", "bounded_client"]

DEFAULT_REQUEST_TIMEOUT = 10.0
DEFAULT_MAX_ANSWER_BYTES = 10 * 1024 * 1024

#: The monotonic time the request under way must be done by (read by the network streams below).
_DEADLINE: ContextVar[float] = ContextVar("avito_harness_deadline", default=math.inf)
_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS"})


class RequestDeadlineHit(httpx.TimeoutException):
    """The gateway gave no complete answer within the request deadline."""


class AnswerTooLarge(httpx.TransportError):
    """The gateway's answer was larger than the cap."""


class ScenarioDeadlineHit(CannotJudge):
    """The scenario ran out of time: it is not judged (the deadline is the harness's, not a defect)."""

    def __init__(self, seconds: float, where: str) -> None:
        super().__init__(Category.NOT_JUDGED, f"the scenario deadline of {seconds:g} s (--scenario-timeout) was hit "
                         f"{where}")


@dataclass
class Bounds:
    """The limits one client keeps; ``scenario_deadline`` (a monotonic time) is set per scenario."""

    request_timeout: float = DEFAULT_REQUEST_TIMEOUT
    max_answer_bytes: int = DEFAULT_MAX_ANSWER_BYTES
    scenario_timeout: float | None = None
    scenario_deadline: float = math.inf

    def __post_init__(self) -> None:
        if not self.request_timeout > 0:
            raise ValueError(f"the request deadline must be > 0 s, not {self.request_timeout!r}")
        if self.max_answer_bytes < 1024:
            raise ValueError(f"the answer cap must be at least 1024 bytes, not {self.max_answer_bytes!r}")

    def start_scenario(self) -> None:
        self.scenario_deadline = (time.monotonic() + self.scenario_timeout) if self.scenario_timeout else math.inf

    def remaining(self) -> float:
        """Seconds the scenario has left (inf when it has no deadline)."""
        return self.scenario_deadline - time.monotonic()

    def check(self, where: str) -> None:
        """Raise :class:`ScenarioDeadlineHit` once the scenario's time is up."""
        if self.remaining() <= 0:
            self.over(where)

    def over(self, where: str) -> NoReturn:
        raise ScenarioDeadlineHit(self.scenario_timeout or 0, where)


class _DeadlineStream(httpcore.NetworkStream):
    """A socket stream whose every read and write ends by the request's deadline."""

    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    @staticmethod
    def _budget(timeout: float | None, error: type[Exception]) -> float:
        remaining = _DEADLINE.get() - time.monotonic()
        if remaining <= 0:
            raise error("deadline")
        return remaining if timeout is None else min(timeout, remaining)

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, self._budget(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, self._budget(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(self, ssl_context: Any, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore.NetworkStream:
        return _DeadlineStream(self._inner.start_tls(ssl_context, server_hostname,
                                                     self._budget(timeout, httpcore.ConnectTimeout)))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    def __init__(self) -> None:
        self._inner = httpcore.SyncBackend()

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        budget = _DeadlineStream._budget(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._inner.connect_tcp(host, port, budget, local_address, socket_options))

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        budget = _DeadlineStream._budget(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._inner.connect_unix_socket(path, budget, socket_options))

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class _BoundedTransport(httpx.HTTPTransport):
    def __init__(self, bounds: Bounds, *, retry_broken: bool) -> None:
        super().__init__(trust_env=False)
        # httpx builds its pool without a way to pass a network backend: the pool is rebuilt with ours (a test
        # holds this to the deadline, so an httpx that renamed the attribute fails loudly, not silently)
        self._pool = httpcore.ConnectionPool(network_backend=_DeadlineBackend(), max_connections=20,
                                             max_keepalive_connections=10, keepalive_expiry=4.0)
        self.bounds = bounds
        self.retry_broken = retry_broken

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        attempts = 2 if (self.retry_broken or request.method in _IDEMPOTENT) else 1
        for attempt in range(attempts):
            try:
                return self._once(request)
            except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError, httpx.ConnectError):
                # a connection the gateway closed (after a 500, say) is no verdict on the next request
                if attempt + 1 == attempts:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _once(self, request: httpx.Request) -> httpx.Response:
        bounds = self.bounds
        where = f"{request.method} {request.url.path}"
        bounds.check(f"before {where}")
        started = time.monotonic()
        token = _DEADLINE.set(min(started + bounds.request_timeout, bounds.scenario_deadline))
        try:
            response = super().handle_request(request)
            body = self._read_capped(response, where)
        except httpx.TimeoutException:
            bounds.check(f"waiting for the answer to {where}")
            raise RequestDeadlineHit(f"{where}: no complete answer within the {bounds.request_timeout:g} s request "
                                     "deadline (--request-timeout)", request=request) from None
        finally:
            _DEADLINE.reset(token)
        return httpx.Response(response.status_code, headers=response.headers, stream=httpx.ByteStream(body),
                              extensions=response.extensions, request=request)

    def _read_capped(self, response: httpx.Response, where: str) -> bytes:
        cap, chunks, size = self.bounds.max_answer_bytes, [], 0
        stream = response.stream
        assert isinstance(stream, httpx.SyncByteStream)
        try:
            for chunk in stream:
                size += len(chunk)
                if size > cap:
                    raise AnswerTooLarge(f"{where}: the answer is larger than {cap:,} bytes (--max-answer-bytes); "
                                         "reading stopped there")
                chunks.append(chunk)
        finally:
            stream.close()
        return b"".join(chunks)


def bounded_client(bounds: Bounds, *, base_url: str = "", headers: dict[str, str] | None = None,
                   retry_broken: bool = False) -> httpx.Client:
    """An httpx client held to ``bounds`` (``retry_broken``: a POST whose connection broke is tried again too;
    only for requests that must be refused anyway, such as the key checks)."""
    return httpx.Client(base_url=base_url, headers={"Accept-Encoding": "identity", **(headers or {})},
                        timeout=bounds.request_timeout, trust_env=False,
                        transport=_BoundedTransport(bounds, retry_broken=retry_broken))
