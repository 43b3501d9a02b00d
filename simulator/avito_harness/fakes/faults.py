"""One fault model for every fake: rules that match requests and replace the answer.

A :class:`FaultRule` matches ``"METHOD /path-glob"`` (and optionally an Avito
account), then applies one effect: an error answer (status, body, headers),
a short real delay before the normal answer, a dropped connection, a lost
answer (processed, then the connection dies), or a hang until the caller
gives up. ``times``/``after``/a clock window/a seeded
probability decide which matches fire. :func:`fault_middleware` applies the
rules of one service in order; the first rule that fires wins.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import random
import threading
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import asdict, dataclass, field, fields
from fnmatch import fnmatchcase
from typing import Any, Literal

__all__ = [
    "AVITO_PRESETS",
    "Effect",
    "FaultRule",
    "FaultSet",
    "FaultMiddleware",
    "rule_from_dict",
]

Effect = Literal["respond", "delay", "drop", "hang", "lose_answer"]
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: Longest real wait a "delay" or "hang" fault may impose (seconds).
MAX_REAL_WAIT = 60.0

_ids = itertools.count(1)


_NUM = (int, float)
#: The JSON types each field takes (a rule arrives as plain data over HTTP or from YAML).
_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "service": (str,), "route": (str,), "account": (int, type(None)), "effect": (str,), "status": (int,),
    "headers": (dict,), "delay": _NUM, "times": (int, type(None)), "after": (int,), "probability": _NUM,
    "active_from": (*_NUM, type(None)), "active_until": (*_NUM, type(None)), "name": (str,), "required": (bool,),
    "id": (str,),
}


@dataclass
class FaultRule:
    """What to break, when, and how. Plain data: loads from and dumps to YAML/JSON."""

    service: str = "avito"
    route: str = "* *"
    account: int | None = None
    effect: Effect = "respond"
    status: int = 503
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    times: int | None = 1
    after: int = 0
    probability: float = 1.0
    active_from: float | None = None
    active_until: float | None = None
    name: str = ""
    required: bool = True
    id: str = ""
    seen: int = 0
    fired: int = 0

    def __post_init__(self) -> None:
        for name, kinds in _FIELD_TYPES.items():
            value = getattr(self, name)
            if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
                wanted = " or ".join("null" if k is type(None) else k.__name__ for k in kinds)
                raise TypeError(f"{name} must be {wanted}, got {type(value).__name__} {value!r}"[:200])
        for name in ("delay", "probability"):
            if not math.isfinite(getattr(self, name)):
                raise ValueError(f"{name} must be a finite number")
        if not self.id:
            self.id = f"fault-{next(_ids)}"
        if " " not in self.route.strip():
            raise ValueError(f"route must be 'METHOD /path-glob', got {self.route!r}")
        if self.effect not in ("respond", "delay", "drop", "hang", "lose_answer"):
            raise ValueError(f"unknown effect {self.effect!r}")
        if not 0.0 <= self.probability <= 1.0:
            raise ValueError("probability must be within 0..1")
        if self.times is not None and self.times < 1:
            raise ValueError("times must be >= 1 or null (permanent)")
        if self.after < 0:
            raise ValueError("after must be >= 0")
        if not 0.0 <= self.delay <= MAX_REAL_WAIT:
            raise ValueError(f"delay must be within 0..{MAX_REAL_WAIT} s")
        if self.effect == "respond" and not 100 <= self.status <= 599:
            raise ValueError("status must be an HTTP status code")

    def matches(self, service: str, method: str, path: str, account: int | None) -> bool:
        if service != self.service:
            return False
        if self.account is not None and account != self.account:
            return False
        want_method, want_path = self.route.split(" ", 1)
        return fnmatchcase(method.upper(), want_method.upper()) and fnmatchcase(path, want_path.strip())

    def take(self, now: float, rng: random.Random) -> bool:
        """Count one matching request; True if this one is to be broken."""
        if self.active_from is not None and now < self.active_from:
            return False
        if self.active_until is not None and now >= self.active_until:
            return False
        self.seen += 1
        n = self.seen - self.after
        if n < 1 or (self.times is not None and self.fired >= self.times):
            return False
        if self.probability < 1.0 and rng.random() >= self.probability:
            return False
        self.fired += 1
        return True

    @property
    def exhausted(self) -> bool:
        return self.times is not None and self.fired >= self.times

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_RULE_FIELDS = {f.name for f in fields(FaultRule)}


def rule_from_dict(data: dict[str, Any], *, service: str | None = None) -> FaultRule:
    """Build a rule from plain data; ``preset`` names one of :data:`AVITO_PRESETS`."""
    data = dict(data)
    preset = data.pop("preset", None)
    base: dict[str, Any] = {}
    if preset is not None:
        if preset not in AVITO_PRESETS:
            raise ValueError(f"unknown preset {preset!r}; known: {', '.join(sorted(AVITO_PRESETS))}")
        base = dict(AVITO_PRESETS[preset])
        base.setdefault("name", preset)
    unknown = set(data) - _RULE_FIELDS
    if unknown:
        raise ValueError(f"unknown fault field(s): {', '.join(sorted(unknown))}")
    base.update(data)
    if service is not None:
        base.setdefault("service", service)
    for counter in ("seen", "fired"):
        base.pop(counter, None)
    return FaultRule(**base)


def _avito_error(code: int, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


#: Named presets for every Avito error class (bodies in Avito's error shape).
AVITO_PRESETS: dict[str, dict[str, Any]] = {
    "validation_400": {
        "status": 400,
        "body": {"error": {"code": 400, "message": "Validation error", "fields": {"message.text": "invalid"}}},
    },
    "expired_401": {"status": 401, "body": _avito_error(401, "Unauthorized")},
    "expired_403": {"status": 403, "body": _avito_error(403, "Forbidden")},
    "forbidden_403": {"status": 403, "body": _avito_error(403, "Forbidden")},
    "tariff_402": {"status": 402, "body": _avito_error(402, "Payment required")},
    "chat_not_found_404": {"status": 404, "body": _avito_error(404, "Chat not found")},
    "rate_limited_429": {"status": 429, "body": {"error": {"code": 429, "message": "Too Many Requests"}}},
    "rate_limited_429_retry_after": {
        "status": 429,
        "body": {"error": {"code": 429, "message": "Too Many Requests"}},
        "headers": {"Retry-After": "30"},
    },
    "server_500": {
        "status": 500,
        "body": _avito_error(500, "Error while processing request. Please, contact support"),
    },
    "unavailable_503": {
        "status": 503,
        "body": _avito_error(503, "Service temporarily unavailable. Please, contact support"),
    },
    "slow": {"effect": "delay", "delay": 3.0},
    "dropped": {"effect": "drop"},
    "answer_lost": {"effect": "lose_answer"},
    "hang": {"effect": "hang"},
}


class FaultSet:
    """The ordered rules of one service, with a seeded RNG for probabilistic rules."""

    def __init__(self, service: str, *, seed: int = 0) -> None:
        self.service = service
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []
        self._seed = seed
        self._rng = random.Random(seed)

    def add(self, rule: FaultRule) -> FaultRule:
        if rule.service != self.service:
            raise ValueError(f"rule for service {rule.service!r} added to {self.service!r}")
        with self._lock:
            self._rules.append(rule)
        return rule

    def add_dict(self, data: dict[str, Any]) -> FaultRule:
        return self.add(rule_from_dict(data, service=self.service))

    def remove(self, rule_id: str) -> bool:
        with self._lock:
            before = len(self._rules)
            self._rules = [r for r in self._rules if r.id != rule_id]
            return len(self._rules) != before

    @property
    def armed(self) -> bool:
        """Any rule at all (read without the lock: a request racing a rule being added may miss it either way)."""
        return bool(self._rules)

    def rules(self) -> list[FaultRule]:
        with self._lock:
            return list(self._rules)

    def unfired(self) -> list[FaultRule]:
        """Required rules that never broke a request: a test that set them missed its target."""
        return [r for r in self.rules() if r.required and r.fired == 0]

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def reset(self, seed: int | None = None) -> None:
        self.clear()
        if seed is not None:
            self._seed = seed
        self._rng = random.Random(self._seed)

    def pick(self, method: str, path: str, account: int | None, now: float) -> FaultRule | None:
        with self._lock:
            for rule in self._rules:
                if rule.matches(self.service, method, path, account) and rule.take(now, self._rng):
                    return rule
        return None


async def _wait_for_disconnect(receive: Receive, limit: float) -> None:
    async def until_gone() -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return

    try:
        await asyncio.wait_for(until_gone(), timeout=limit)
    except TimeoutError:
        pass


class FaultMiddleware:
    """Pure ASGI middleware: requests a rule picks get the rule's effect instead of the app."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        faults: FaultSet,
        now: Callable[[], float],
        account_of: Callable[[Scope], int | None],
        error_body: Callable[[int], Any],
        skip_prefixes: tuple[str, ...] = ("/_sim",),
        eligible: Callable[[Scope], bool] | None = None,
    ) -> None:
        self.app, self.faults, self.now, self.eligible = app, faults, now, eligible
        self.account_of, self.error_body, self.skip_prefixes = account_of, error_body, skip_prefixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (not self.faults.armed or scope["type"] != "http" or scope["path"].startswith(self.skip_prefixes)
                or (self.eligible is not None and not self.eligible(scope))):
            await self.app(scope, receive, send)
            return
        rule = self.faults.pick(scope["method"], scope["path"], self.account_of(scope), self.now())
        if rule is None:
            await self.app(scope, receive, send)
            return
        scope.setdefault("state", {})["fault"] = rule.name or rule.id
        if rule.delay:
            await asyncio.sleep(rule.delay)
        if rule.effect == "delay":
            await self.app(scope, receive, send)
        elif rule.effect == "hang":
            await _wait_for_disconnect(receive, MAX_REAL_WAIT)
            await send({"type": "http.response.start", "status": 504, "headers": []})
            await send({"type": "http.response.body", "body": b""})
        elif rule.effect == "lose_answer":
            await self._lose_answer(scope, receive, send)
        elif rule.effect == "drop":
            # Promise a body and close the connection halfway: the client sees
            # the connection die mid-answer (httpx: RemoteProtocolError).
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"1024")]})
            await send({"type": "http.response.body", "body": b"{", "more_body": True})
        else:
            await self._respond(rule, send)

    async def _lose_answer(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The request is processed (a send lands), then the connection dies before the answer."""

        async def swallow(message: Message) -> None:
            return None

        await self.app(scope, receive, swallow)
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"1024")]})
        await send({"type": "http.response.body", "body": b"{", "more_body": True})

    async def _respond(self, rule: FaultRule, send: Send) -> None:
        body = rule.body if rule.body is not None else self.error_body(rule.status)
        raw = body.encode() if isinstance(body, str) else json.dumps(body, ensure_ascii=False).encode()
        ctype = b"text/plain; charset=utf-8" if isinstance(body, str) else b"application/json"
        headers = [(b"content-type", ctype), (b"content-length", str(len(raw)).encode())]
        headers += [(k.lower().encode(), str(v).encode()) for k, v in rule.headers.items()]
        await send({"type": "http.response.start", "status": rule.status, "headers": headers})
        await send({"type": "http.response.body", "body": raw})
