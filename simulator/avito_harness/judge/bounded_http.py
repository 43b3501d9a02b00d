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
from dataclasses import dataclass
from typing import NoReturn

import httpx

from avito_harness.http_deadline import AnswerTooLarge, DeadlineTransport
from avito_harness.judge.verdict import CannotJudge, Category

__all__ = ["AnswerTooLarge", "Bounds", "HEALTH_ANSWER_BYTES", "RequestDeadlineHit", "ScenarioDeadlineHit",
           "bounded_client"]

#: The most a probe of /health (or n8n's /healthz) reads: a gateway serving a thousand shops may list each there
#: (ours does: 64 KiB was too little at 1,000 accounts), and a hostile one still cannot make the harness read much.
HEALTH_ANSWER_BYTES = 1 << 20

DEFAULT_REQUEST_TIMEOUT = 10.0
DEFAULT_MAX_ANSWER_BYTES = 10 * 1024 * 1024

_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS"})


class RequestDeadlineHit(httpx.TimeoutException):
    """The gateway gave no complete answer within the request deadline."""


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
    run_ends_first: bool = False
    option: str = "--request-timeout"  # the option that sets the request deadline, for messages

    def __post_init__(self) -> None:
        if not self.request_timeout > 0:
            raise ValueError(f"the request deadline must be > 0 s, not {self.request_timeout!r}")
        if self.max_answer_bytes < 1024:
            raise ValueError(f"the answer cap must be at least 1024 bytes, not {self.max_answer_bytes!r}")

    def start_scenario(self, run_deadline: float = math.inf) -> None:
        """The scenario's deadline: its own, or the run's when that comes first (each named when hit)."""
        own = (time.monotonic() + self.scenario_timeout) if self.scenario_timeout else math.inf
        self.scenario_deadline, self.run_ends_first = min(own, run_deadline), run_deadline < own

    def remaining(self) -> float:
        """Seconds the scenario has left (inf when it has no deadline)."""
        return self.scenario_deadline - time.monotonic()

    def check(self, where: str) -> None:
        """Raise :class:`ScenarioDeadlineHit` once the scenario's time is up."""
        if self.remaining() <= 0:
            self.over(where)

    def over(self, where: str) -> NoReturn:
        if self.run_ends_first:
            raise CannotJudge(Category.NOT_JUDGED, f"the run deadline (--run-timeout) was hit {where}")
        raise ScenarioDeadlineHit(self.scenario_timeout or 0, where)


class _BoundedTransport(DeadlineTransport):
    """The request deadline, cut to the scenario's; a broken connection of an idempotent request tried again."""

    cap_hint = " (--max-answer-bytes)"

    def __init__(self, bounds: Bounds, *, retry_broken: bool) -> None:
        super().__init__(total=bounds.request_timeout, max_bytes=bounds.max_answer_bytes)
        self.bounds = bounds
        self.retry_broken = retry_broken

    def deadline(self, started: float) -> float:
        return min(started + self.bounds.request_timeout, self.bounds.scenario_deadline)

    def timed_out(self, request: httpx.Request, where: str) -> Exception:
        if self.bounds.remaining() <= 0.05:
            self.bounds.over(f"waiting for the answer to {where}")
        return RequestDeadlineHit(f"{where}: no complete answer within the {self.bounds.request_timeout:g} s request "
                                  f"deadline ({self.bounds.option})", request=request)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        attempts = 2 if (self.retry_broken or request.method in _IDEMPOTENT) else 1
        for attempt in range(attempts):
            self.bounds.check(f"before {request.method} {request.url.path}")
            try:
                return super().handle_request(request)
            except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError, httpx.ConnectError):
                # a connection the gateway closed (after a 500, say) is no verdict on the next request
                if attempt + 1 == attempts:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover


def bounded_client(bounds: Bounds, *, base_url: str = "", headers: dict[str, str] | None = None,
                   retry_broken: bool = False) -> httpx.Client:
    """An httpx client held to ``bounds`` (``retry_broken``: a POST whose connection broke is tried again too;
    only for requests that must be refused anyway, such as the key checks)."""
    return httpx.Client(base_url=base_url, headers={"Accept-Encoding": "identity", **(headers or {})},
                        timeout=bounds.request_timeout, trust_env=False,
                        transport=_BoundedTransport(bounds, retry_broken=retry_broken))
