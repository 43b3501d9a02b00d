"""The request journal: every request a fake received, with secrets masked.

Recorded by :func:`journal_middleware` (pure ASGI, so faulted and rejected
requests are recorded too), read through ``GET /_sim/journal``.
"""

from __future__ import annotations

import itertools
import threading
import time as _perf
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any
from urllib.parse import parse_qsl, urlencode

from avito_harness.fakes.faults import ASGIApp, Message, Receive, Scope, Send
from avito_harness.fakes.jsonsafe import loads_viewable

__all__ = ["Journal", "JournalEntry", "JournalMiddleware", "mask_secrets", "note_error"]

#: Body and query keys whose values never appear in the journal.
SECRET_KEYS = frozenset(
    {"client_secret", "refresh_token", "access_token", "code", "secret", "api_key", "password", "token"}
)
SECRET_HEADERS = frozenset({"authorization", "x-api-key", "cookie", "proxy-authorization"})
MAX_BODY = 64 * 1024
ERROR_BODY = 300


def _mask(value: str) -> str:
    return "***" if len(value) < 16 else f"***{value[-4:]}"


def mask_secrets(data: Any) -> Any:
    """Return ``data`` with the values of secret-looking keys masked (recursively)."""
    if isinstance(data, dict):
        return {
            k: (_mask(str(v)) if k.lower() in SECRET_KEYS and v is not None else mask_secrets(v))
            for k, v in data.items()
        }
    if isinstance(data, list):
        return [mask_secrets(v) for v in data]
    return data


def _mask_header(name: str, value: str) -> str:
    if name not in SECRET_HEADERS:
        return value
    scheme, _, rest = value.partition(" ")
    return f"{scheme} {_mask(rest)}" if rest else _mask(value)


def _body_view(raw: bytes, content_type: str) -> Any:
    if not raw:
        return None
    if "multipart/form-data" in content_type:
        return {"multipart": True, "bytes": len(raw)}
    if len(raw) > MAX_BODY:
        return {"truncated": True, "bytes": len(raw)}
    text = raw.decode("utf-8", errors="replace")
    if "json" in content_type:
        try:
            return mask_secrets(loads_viewable(text))
        except ValueError:
            return text
    if "x-www-form-urlencoded" in content_type:
        return mask_secrets(dict(parse_qsl(text, keep_blank_values=True)))
    return text


@dataclass(slots=True)
class JournalEntry:
    """One request. What it carried is kept as received and masked when read: recording stays cheap under load."""

    id: int
    service: str
    time: float
    method: str
    path: str
    raw_query: bytes
    raw_headers: list[tuple[bytes, bytes]]
    raw_body: Any  # bytes as received (or a size note); parsed and masked only when someone reads the journal
    status: int = 0
    duration_ms: float = 0.0
    account: int | None = None
    fault: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    seen_at: float = field(default_factory=_perf.perf_counter)  # real time, orders events across fakes

    @property
    def query(self) -> str:
        query = self.raw_query.decode("latin-1")
        return urlencode(mask_secrets(dict(parse_qsl(query, keep_blank_values=True)))) if query else ""

    @property
    def headers(self) -> dict[str, str]:
        decoded = ((k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in self.raw_headers)
        return {k: _mask_header(k, v) for k, v in decoded}

    @property
    def body(self) -> Any:
        if isinstance(self.raw_body, bytes):
            return _body_view(self.raw_body, self.headers.get("content-type", ""))
        return self.raw_body

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "service": self.service, "time": self.time, "method": self.method,
                "path": self.path, "query": self.query, "headers": self.headers, "status": self.status,
                "duration_ms": self.duration_ms, "account": self.account, "fault": self.fault,
                "extra": self.extra, "seen_at": self.seen_at, "body": self.body}


class Journal:
    """A bounded, thread-safe list of :class:`JournalEntry`, newest last."""

    def __init__(self, service: str, *, limit: int = 10_000) -> None:
        self.service = service
        self._lock = threading.Lock()
        self._entries: deque[JournalEntry | Compact] = deque(maxlen=limit)
        self._ids = itertools.count(1)

    def new_id(self) -> int:
        return next(self._ids)

    def add(self, entry: JournalEntry | Compact) -> None:
        with self._lock:
            self._entries.append(entry)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._ids = itertools.count(1)

    def entries(
        self,
        *,
        method: str | None = None,
        path: str | None = None,
        status: int | None = None,
        account: int | None = None,
        since: int = 0,
    ) -> list[JournalEntry]:
        """Entries matching all given filters; ``path`` is a glob."""
        with self._lock:
            items = list(self._entries)
        return [
            e
            for e in map(_entry, items)
            if e.id > since
            and (method is None or e.method == method.upper())
            and (path is None or fnmatchcase(e.path, path))
            and (status is None or e.status == status)
            and (account is None or e.account == account)
        ]


class JournalMiddleware:
    """Pure ASGI middleware: records each request and its answer's status in ``journal``."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        journal: Journal,
        now: Callable[[], float],
        account_of: Callable[[Scope], int | None],
        skip_prefixes: tuple[str, ...] = ("/_sim",),
    ) -> None:
        self.app, self.journal, self.now = app, journal, now
        self.account_of, self.skip_prefixes = account_of, skip_prefixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(self.skip_prefixes):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        entry = self.begin(scope)
        started = _perf.perf_counter()

        async def recording_receive() -> Message:
            nonlocal size
            message = await receive()
            if message["type"] == "http.request":
                body = message.get("body", b"")
                size += len(body)
                if size <= MAX_BODY * 4:
                    chunks.append(body)
            return message

        async def recording_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                entry.status = message["status"]
            elif message["type"] == "http.response.body":
                note_error(entry, message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, recording_receive, recording_send)
        finally:
            self.finish(entry, scope, b"".join(chunks) if size <= MAX_BODY * 4 else {"truncated": True, "bytes": size},
                        started)

    def begin(self, scope: Scope, *, numbered: bool = True) -> JournalEntry:
        """The entry of a request as it arrives (``numbered=False``: its id comes in :meth:`finish`, for a caller
        that may yet hand the request on to this middleware)."""
        return JournalEntry(
            id=self.journal.new_id() if numbered else 0,
            service=self.journal.service,
            time=self.now(),
            method=scope["method"],
            path=scope["path"],
            raw_query=scope.get("query_string", b""),
            raw_headers=scope["headers"],
            raw_body=None,
            account=self.account_of(scope),
        )

    def finish(self, entry: JournalEntry, scope: Scope, body: Any, started: float) -> None:
        """Complete ``entry`` with what the layers inside noted, and add it to the journal."""
        entry.raw_body = body
        entry.duration_ms = round((_perf.perf_counter() - started) * 1000, 3)
        if not entry.id:
            entry.id = self.journal.new_id()
        _take_notes(entry, scope.get("state"))
        self.journal.add(entry)

    def record(self, scope: Scope, body: Any, status: int, answer: bytes, *, time: float, started: float,
               account: int | None) -> None:
        """:meth:`begin` and :meth:`finish` at once, for a request answered whole (the hot calls): kept as a tuple
        and made an entry only when someone reads the journal. Under load the entry and its notes cost a sixth of
        a send. ``time`` is the clock's at arrival; ``started``, the real time then; ``answer``, the body sent."""
        journal = self.journal
        journal.add((journal.new_id(), journal.service, time, scope["method"], scope["path"],
                     scope.get("query_string", b""), scope["headers"], body, status, _perf.perf_counter() - started,
                     account, scope.get("state"), answer if status >= 400 else b"", started))


#: A request recorded by :meth:`JournalMiddleware.record`: id, service, time, method, path, query, headers, body,
#: status, duration (s), account, notes, the answer's body when it was an error, real time at arrival.
Compact = tuple[int, str, float, str, str, bytes, list[tuple[bytes, bytes]], Any, int, float, int | None,
                dict[str, Any] | None, bytes, float]


def _entry(item: JournalEntry | Compact) -> JournalEntry:
    """The entry as :meth:`JournalMiddleware.finish` would have made it."""
    if isinstance(item, JournalEntry):
        return item
    id_, service, time, method, path, query, headers, body, status, duration, account, notes, error, seen = item
    entry = JournalEntry(id=id_, service=service, time=time, method=method, path=path, raw_query=query,
                         raw_headers=headers, raw_body=body, status=status, duration_ms=round(duration * 1000, 3),
                         account=account, seen_at=seen)
    note_error(entry, error)
    _take_notes(entry, notes)
    return entry


def _take_notes(entry: JournalEntry, notes: dict[str, Any] | None) -> None:
    """What the layers inside noted: the fault that hit, the account a token named, a hint."""
    if notes:
        entry.fault = notes.get("fault")
        if entry.account is None:  # known only once the handler read the body (a token's client_id)
            entry.account = notes.get("account")
        for key in ("hint", "reason", "fields", "served"):  # for people, and the same as codes for the judge
            if notes.get(key):
                entry.extra[key] = notes[key]


def note_error(entry: JournalEntry, body: bytes) -> None:
    """The error the fake answered, for transcripts: what went wrong, not only the status (its first chunk)."""
    if entry.status >= 400 and "error" not in entry.extra:
        entry.extra["error"] = bytes(body)[:ERROR_BODY].decode("utf-8", errors="replace")
