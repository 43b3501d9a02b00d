"""Near misses: requests Avito would refuse that nearly are a call it serves, served as that call.

A client that gets one thing wrong (its token by HTTP Basic, an operation on another API version, a send
without ``"type"``, a webhook URL that does not answer the ``{}`` probe) would meet Avito's refusal and stop
there, hiding everything behind it. With ``SIM_NEAR_MISSES=serve`` (what ``avito-harness run`` asks for unless
``--strict-avito``) the fake serves such a request as Avito serves the correct one and notes the near miss on
the request (a reason code, a hint for people and ``served``), so the judge names the mistake and the run goes
on to show what lies deeper. The default, ``refuse``, answers exactly as Avito does (a fake that looks like
Avito to a client under development). The journal always shows the request as it came.
"""

from __future__ import annotations

import json
import re
from typing import Any

from starlette.routing import Match

from avito_harness.fakes.faults import ASGIApp, Scope
from avito_harness.fakes.reasons import Reason

__all__ = ["NearMisses", "SEND", "note_near_miss", "serving", "served_template"]

SEND = re.compile(r"/messenger/v1/accounts/[^/]+/chats/[^/]+/messages")
_VERSION = re.compile(r"/v\d+/")


def serving(settings: Any) -> bool:
    """True when near misses are served as the call they nearly are (the default)."""
    return getattr(settings, "near_misses", "refuse") == "serve"


def note_near_miss(notes: dict[str, Any], reason: Reason, hint: str) -> None:
    """What the journal records of a near miss the fake served."""
    notes.update(reason=reason, hint=f"{hint}; served as Avito serves the correct call (the real Avito refuses "
                                     "it: run with --strict-avito to see that)", served=True)


def _shape(path: str) -> str:
    return _VERSION.sub("/v*/", path.rstrip("/") or "/")


def served_template(openapi: dict[str, Any], method: str, path: str) -> str | None:
    """The path template Avito serves that ``path`` nearly is (another API version, a trailing slash)."""
    wanted = _shape(path)
    for template, operations in openapi.get("paths", {}).items():
        if method.lower() not in operations or template.startswith("/_sim"):
            continue
        pattern = "^" + re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(_shape(template))) + "$"
        if re.match(pattern, wanted):
            return str(template)
    return None


def _concrete(path: str, template: str) -> str:
    """``path`` with the template's version and trailing slash (its ids kept)."""
    version = _VERSION.search(template)
    fixed = _VERSION.sub(version.group(0), path, count=1) if version else path
    fixed = fixed.rstrip("/")
    return fixed + "/" if template.endswith("/") else fixed


async def _body(receive: Any) -> bytes:
    chunks, more = [], True
    while more:
        message = await receive()
        chunks.append(message.get("body", b""))
        more = bool(message.get("more_body", False))
    return b"".join(chunks)


def _replay(body: bytes, receive: Any) -> Any:
    sent = False

    async def again() -> Any:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return again


class NearMisses:
    """Behind the journal (which keeps the request as it came) and in front of the faults (a scenario's fault hits
    the call the near miss is served as). An exact call costs one regular-expression match."""

    def __init__(self, app: ASGIApp, *, framework: Any, settings: Any) -> None:
        self.app, self.framework, self.settings = app, framework, settings
        self._exact: dict[str, re.Pattern[str]] | None = None

    def routed(self, scope: Scope) -> bool:
        """A path a route serves as it is (no near miss)."""
        if self._exact is None:  # every served path template as one pattern per method, built on first use
            by_method: dict[str, list[str]] = {}
            for route in self.framework.router.routes:
                for method in getattr(route, "methods", None) or ():
                    by_method.setdefault(method, []).append(route.path_regex.pattern.removeprefix("^").removesuffix("$"))
            self._exact = {m: re.compile("^(?:" + "|".join(p) + ")$") for m, p in by_method.items()}
        pattern = self._exact.get(scope["method"])
        return bool(pattern and pattern.match(scope["path"])) or any(
            route.matches(scope)[0] == Match.FULL for route in self.framework.router.routes
            if not getattr(route, "methods", None))

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not serving(self.settings) or scope["path"].startswith(("/_sim", "/media")):
            await self.app(scope, receive, send)
            return
        notes: dict[str, Any] = scope.setdefault("state", {})
        if not self.routed(scope):
            template = served_template(self.framework.openapi(), scope["method"], scope["path"])
            if template is not None:
                note_near_miss(notes, Reason.OTHER_API_VERSION,
                               f"no such path at Avito; Avito serves {scope['method']} {template}")
                target = _concrete(scope["path"], template)
                scope = {**scope, "path": target, "raw_path": target.encode()}
        if scope["method"] == "POST" and SEND.fullmatch(scope["path"]):
            body = await _body(receive)
            receive = _replay(body if b'"type"' in body else self._typed(body, notes), receive)
        await self.app(scope, receive, send)

    @staticmethod
    def _typed(body: bytes, notes: dict[str, Any]) -> bytes:
        """A send body without ``"type"`` but with a text message: the text send it nearly is."""
        try:
            parsed = json.loads(body)
        except ValueError:
            return body
        if isinstance(parsed, dict) and "type" not in parsed and isinstance(parsed.get("message"), dict):
            note_near_miss(notes, Reason.SEND_WITHOUT_TYPE,
                           'a send body without "type": Avito requires "type": "text" beside "message"')
            return json.dumps({**parsed, "type": "text"}, ensure_ascii=False).encode()
        return body
