"""Raw-ASGI answers for the four calls load tests hammer: token, send text, list chats, list messages.

FastAPI's per-request machinery (dependency solving, parameter and response models, routing through every
route) costs several times the work these calls do: on the bench the framework alone answers a few thousand
requests a second where the same state answers far more. The framework routes (``oauth.py``,
``messenger.py``) stay the reference: this layer calls the very functions they call, answers only requests it
can answer exactly as they would (status, headers and bytes; ``tests/unit/test_fast_routes.py`` sends both the
same requests) and hands anything else to them untouched, body included, before any side effect (a rate-limit
count, a token, a message). It sits inside the journal and fault middlewares, so both see every request.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

import orjson
from pydantic import ValidationError
from pydantic_core import to_json
from starlette.responses import JSONResponse, Response

from avito_harness.fakes.avito import messenger
from avito_harness.fakes.avito.backend import AvitoBackend
from avito_harness.fakes.avito.errors import (
    AvitoError,
    OAuthError,
    avito_error_response,
    note_error,
    oauth_error_response,
    stock_error_body,
)
from avito_harness.fakes.avito.models import SendTextBody, SendTextMessage
from avito_harness.fakes.avito.oauth import TOKEN_HEADERS, issue_token
from avito_harness.fakes.faults import ASGIApp, Message, Receive, Scope, Send

__all__ = ["Answer", "Call", "FastRoutes", "Handler"]

Handler = Callable[["Call"], "Answer | None"]  # synchronous: a hot call never waits (a send's echo aside, below)
_NUMBER = re.compile(r"[0-9]{1,4}")
_JSON_TYPE = (b"content-type", b"application/json")
_PAGING = {"limit": (1, 100), "offset": (0, 1000)}
_BOOLEANS = {"true": True, "false": False, "1": True, "0": False}
ROUTES_KEPT = 10_000
#: the model's own bounds on a text's length
SEND_TEXT_MIN, SEND_TEXT_LIMIT = (next(getattr(m, bound) for m in SendTextMessage.model_fields["text"].metadata
                                       if hasattr(m, bound)) for bound in ("min_length", "max_length"))
_UNSEEN = object()


class Call:
    """One request as the handlers see it."""

    __slots__ = ("scope", "groups", "body")

    def __init__(self, scope: Scope, groups: tuple[str, ...], body: bytes) -> None:
        self.scope, self.groups, self.body = scope, groups, body

    def header(self, name: bytes) -> str | None:
        """A header's first value (a handler asks for one or two of a handful: a walk beats building a dict)."""
        for key, value in self.scope["headers"]:
            if key == name:
                return str(value.decode("latin-1"))
        return None

    @property
    def notes(self) -> dict[str, Any]:
        """The request's state (Starlette's ``request.state``): hints and the account, for the journal."""
        notes: dict[str, Any] = self.scope.setdefault("state", {})
        return notes

    def query(self) -> list[tuple[str, str]]:
        raw = self.scope.get("query_string", b"")
        return parse_qsl(raw.decode("latin-1"), keep_blank_values=True) if raw else []


class FastRoutes:
    """Pure ASGI: the hot calls answered directly, everything else passed to ``app`` (the FastAPI routes)."""

    def __init__(self, app: ASGIApp, *, backend: AvitoBackend) -> None:
        self.app, self.backend = app, backend
        self.routes: dict[str, list[tuple[re.Pattern[str], Handler]]] = {
            "POST": [(re.compile(r"/token/?"), self.token),
                     (re.compile(r"/messenger/v1/accounts/([0-9]+)/chats/([^/]+)/messages"), self.send_text)],
            "GET": [(re.compile(r"/messenger/v2/accounts/([0-9]+)/chats"), self.list_chats),
                    (re.compile(r"/messenger/v3/accounts/([0-9]+)/chats/([^/]+)/messages/"), self.list_messages)],
        }
        self._routed: dict[tuple[str, str], tuple[Handler, tuple[str, ...]] | None] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        found = (self.route(scope["method"], scope["path"]) if scope["type"] == "http" and not scope.get("root_path")
                 else None)
        if found is None:
            await self.app(scope, receive, send)
            return
        handler, groups = found
        read: list[Message] = []
        if scope["method"] == "POST":
            read = await _read_body(receive)
            if read[-1]["type"] != "http.request":  # the client left mid-body: the framework says what that means
                await self.app(scope, _replay(read, receive), send)
                return
        try:
            response = self.outcome(handler, Call(scope, groups, b"".join(m.get("body", b"") for m in read)))
            if isinstance(response, Answer) and response.echo is not None:  # the send waits for its echo first
                await messenger.echo_delivered(self.backend, *response.echo)
        except Exception:  # a bug: Avito's 500, and the traceback to the server's log (as the framework does)
            await JSONResponse(stock_error_body(500), status_code=500)(scope, receive, send)
            raise
        if response is None:
            await self.app(scope, _replay(read, receive), send)
        else:
            await response(scope, receive, send)

    @staticmethod
    def outcome(handler: Handler, call: Call) -> Answer | Response | None:
        """The handler's answer, Avito's error answer for what it raised, or None: the framework answers."""
        try:
            return handler(call)
        except AvitoError as exc:
            note_error(call.notes, exc)
            return avito_error_response(exc)
        except OAuthError as exc:
            return oauth_error_response(exc)

    def route(self, method: str, path: str) -> tuple[Handler, tuple[str, ...]] | None:
        """The handler of a hot call and the path's groups, or None. Clients call the same few paths (their chats)
        over and over: the answers are kept (a dict lookup against a regular expression per route), up to
        ``ROUTES_KEPT`` paths, then forgotten at once."""
        key = (method, path)
        found = self._routed.get(key, _UNSEEN)
        if found is _UNSEEN:
            found = None
            for pattern, handler in self.routes.get(method, ()):
                matched = pattern.fullmatch(path)
                if matched:
                    found = handler, matched.groups()
                    break
            if len(path) <= 256:  # a client's odd long paths are not kept
                if len(self._routed) >= ROUTES_KEPT:
                    self._routed.clear()
                self._routed[key] = found
        return found  # type: ignore[return-value]

    def token(self, call: Call) -> Answer | None:
        answer = issue_token(self.backend, call.scope.get("query_string", b"").decode("latin-1"),
                             call.header(b"content-type") or "", call.header(b"authorization") or "", call.body,
                             call.notes)
        return Answer(200, json_bytes(answer), given=_TOKEN_HEADERS)

    def list_chats(self, call: Call) -> Answer | None:
        query = call.query()
        paging = _paging(query)
        unread = [v for k, v in query if k == "unread_only"]
        if paging is None or len(unread) > 1 or (unread and unread[0] not in _BOOLEANS):
            return None
        state, headers = self._authorize(call, "messenger:read", "getChatsV2")
        if any(k in _CHAT_FILTERS for k, _ in query):
            types, item_ids = messenger.chat_filters(lambda key: [v for k, v in query if k == key])
        else:  # what chat_filters makes of neither given
            types, item_ids = list(messenger.DEFAULT_CHAT_TYPES), []
        chats = state.list_chats(limit=paging["limit"], offset=paging["offset"], chat_types=types,
                                 unread_only=bool(unread) and _BOOLEANS[unread[0]], item_ids=item_ids)
        return _json({"chats": state.render_chats(chats)}, headers)

    def list_messages(self, call: Call) -> Answer | None:
        paging = _paging(call.query())
        if paging is None:
            return None
        state, headers = self._authorize(call, "messenger:read", "getMessagesV3")
        return _json(messenger.render_messages(state, call.groups[1], paging["limit"], paging["offset"]), headers)

    def send_text(self, call: Call) -> Answer | None:
        ctype = (call.header(b"content-type") or "").split(";")[0].strip().lower()
        if ctype != "application/json":
            return None
        try:
            # orjson parses what it takes as json.loads would (half the cost); what it refuses (UTF-16, integers
            # past 64 bits, NaN) the framework answers
            parsed = orjson.loads(call.body)
            text = _plain_send_text(parsed)
            if text is None:  # not the plain shape: the model decides, as the framework's does
                text = SendTextBody.model_validate(parsed).message.text
        except (ValueError, ValidationError):  # the framework's 400 names the field
            return None
        state, headers = self._authorize(call, "messenger:write", "postSendMessage")
        message = state.send_text(call.groups[1], text)
        answer = _json(state.render_sent(message), headers)
        if state.settings.delivery.echo_before_response:  # the answer waits for the echo's first delivery attempt
            answer.echo = (state, message)
        return answer

    def _authorize(self, call: Call, scope: str, operation: str) -> tuple[Any, dict[str, str]]:
        return messenger.authorize(self.backend, call.header(b"authorization"), scope=scope,
                                   path_user=call.groups[0], operation=operation, notes=call.notes)


def _plain_send_text(body: Any) -> str | None:
    """The text of a send body that :class:`SendTextBody` plainly accepts (a JSON object with ``type`` "text"
    and a ``message`` object whose ``text`` is a string of 1 to 1,000 characters; other keys are allowed), else
    None. The model costs more than the whole rest of a send's checks; this asks only what it would."""
    if type(body) is dict and body.get("type") == "text":
        message = body.get("message")
        if type(message) is dict:
            text = message.get("text")
            if type(text) is str and SEND_TEXT_MIN <= len(text) <= SEND_TEXT_LIMIT:
                return text
    return None


def _paging(query: list[tuple[str, str]]) -> dict[str, int] | None:
    """``limit`` and ``offset``, each given at most once as a plain in-range number, else None (the framework's
    validation answers). Other parameters are the caller's business, as they are the framework's."""
    values = {"limit": 100, "offset": 0}
    seen: set[str] = set()
    for key, value in query:
        if key not in _PAGING:
            continue
        low, high = _PAGING[key]
        if key in seen or not _NUMBER.fullmatch(value) or not low <= int(value) <= high:
            return None
        seen.add(key)
        values[key] = int(value)
    return values


def _json(content: Any, headers: dict[str, str]) -> Answer:
    """What FastAPI answers for a route's returned value (pydantic's JSON), then the dependency's headers."""
    return Answer(200, json_bytes(content), added=_raw(headers))


def _raw(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    """Headers as ASGI carries them, as Starlette encodes them (lower-case names, latin-1)."""
    if not headers:  # no rate limit set: the usual case
        return []
    return [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]


_TOKEN_HEADERS = _raw(TOKEN_HEADERS)
_CHAT_FILTERS = frozenset({"chat_types", "item_ids"})


def json_bytes(content: Any) -> bytes:
    """Compact UTF-8 JSON, the bytes pydantic and Starlette write for these answers: orjson's, a third of the cost
    (2.3 against 7.5 us for a chat list); pydantic's own past what orjson takes (integers beyond 64 bits)."""
    try:
        return orjson.dumps(content)
    except TypeError:
        return to_json(content)


class Answer:
    """A JSON answer sent as Starlette's Response sends it (same header order), without building one."""

    __slots__ = ("status", "body", "headers", "echo")

    def __init__(self, status: int, body: bytes, *, given: list[tuple[bytes, bytes]] = [],  # noqa: B006 - read only
                 added: list[tuple[bytes, bytes]] = []) -> None:  # noqa: B006
        """``given``: headers passed to the Response (they come first); ``added``: set on it afterwards."""
        self.status, self.body = status, body
        self.echo: tuple[Any, Any] | None = None  # a send's account and message, when its echo is awaited first
        self.headers = [*given, (b"content-length", str(len(body)).encode()), _JSON_TYPE, *added]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status, "headers": self.headers})
        await send({"type": "http.response.body", "body": self.body})


async def _read_body(receive: Receive) -> list[Message]:
    """Every message up to the body's last chunk (or a disconnect, which ends the list)."""
    read: list[Message] = []
    while True:
        message = await receive()
        read.append(message)
        if message["type"] != "http.request" or not message.get("more_body", False):
            return read


def _replay(read: list[Message], receive: Receive) -> Receive:
    pending = list(read)

    async def replay() -> Message:
        return pending.pop(0) if pending else await receive()

    return replay
