"""uvicorn's HTTP/1.1 protocol as the fakes serve it: a turn's writes leave as one send, and an app's direct
answers (the hot calls) go straight back without the ASGI round of a task and message dicts per request."""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

import httptools
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

__all__ = ["CorkedHttpProtocol", "CorkedTransport", "DirectAnswers", "DirectHttpProtocol", "HELD_BODY_LIMIT"]

Reply = tuple[int, list[tuple[bytes, bytes]], bytes]  # status, headers, body

#: A body held for a direct answer past this size goes the ASGI way (streamed, with flow control).
HELD_BODY_LIMIT = 256 * 1024


class DirectAnswers(Protocol):
    """What an app offers as ``app.direct``: the requests it answers whole, from its method, path and body."""

    def takes(self, method: str, path: str) -> Any:
        """Worth holding the body for (asked once the headers are in): what :meth:`answer` is handed, or None."""

    def answer(self, scope: dict[str, Any], body: bytes, taken: Any) -> Reply | None:
        """Status, headers and body; None when the app's ASGI path is to answer (nothing done yet)."""


class CorkedTransport:
    """A connection's transport whose writes in one turn of the event loop leave as one send.

    uvicorn writes an answer's status line and headers, then its body: two sends, and over loopback each send
    is the costly part of a small answer (a third of a fake's CPU under load). Held until the end of the turn,
    they go out together; closing sends what is held first. A direct answer, whole, is held too: written at
    once it cost more (each send wakes the client for one answer, where sends at the end of the turn, one per
    connection read in that turn, wake it for several: 7,700 against 6,700 sends a second under wrk)."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._held: list[bytes] = []
        self._loop = asyncio.get_running_loop()

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not self._held:
            self._loop.call_soon(self.flush)
        self._held.append(bytes(data))

    def flush(self) -> None:
        if self._held:
            held, self._held = self._held, []
            if not self._transport.is_closing():
                self._transport.write(b"".join(held))

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class CorkedHttpProtocol(HttpToolsProtocol):
    """uvicorn's HTTP/1.1 protocol on a :class:`CorkedTransport`."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(CorkedTransport(transport))  # type: ignore[arg-type]


class DirectHttpProtocol(CorkedHttpProtocol):
    """Requests the app's ``direct`` takes are held until their body is in and answered in the same turn; the
    rest (and any it declines, replayed to the parser's callbacks as they came) run as uvicorn runs them.

    Only a plain keep-alive HTTP/1.1 request with nothing ahead of it on the connection is offered (no pipelined
    answer pending, no ``Expect: 100-continue``, no upgrade), so answers leave in the order requests came."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.direct: DirectAnswers | None = getattr(self.app, "direct", None)
        self.held: list[bytes] | None = None
        self.held_size = 0
        self.taken: Any = None

    def on_headers_complete(self) -> None:
        self.held = None
        if self.direct is not None and self._offered():
            parsed = httptools.parse_url(self.url)
            method, path = self.parser.get_method().decode("ascii"), parsed.path.decode("latin-1")
            taken = self.direct.takes(method, path) if path.isascii() and "%" not in path else None
            if taken is not None:
                scope: dict[str, Any] = self.scope  # type: ignore[assignment]
                scope.update(method=method, path=path, raw_path=parsed.path, query_string=parsed.query or b"")
                self.held, self.held_size, self.taken = [], 0, taken
                return
        super().on_headers_complete()

    def _offered(self) -> bool:
        parser = self.parser
        return ((self.cycle is None or self.cycle.response_complete) and not self.expect_100_continue
                and parser.get_http_version() == "1.1" and parser.should_keep_alive() and not parser.should_upgrade()
                and not self.root_path and self.limit_concurrency is None)

    def on_body(self, body: bytes) -> None:
        if self.held is None:
            super().on_body(body)
            return
        self.held.append(body)
        self.held_size += len(body)
        if self.held_size > HELD_BODY_LIMIT:
            self._hand_on(complete=False)

    def on_message_complete(self) -> None:
        if self.held is None:
            super().on_message_complete()
            return
        assert self.direct is not None
        body = b"".join(self.held)
        reply = self.direct.answer(self.scope, body, self.taken)  # type: ignore[arg-type]
        if reply is None:
            self._hand_on(complete=True)
            return
        self.held = None
        status, headers, content = reply
        out = [STATUS_LINE[status]]
        for name, value in (*self.server_state.default_headers, *headers):
            out += [name, b": ", value, b"\r\n"]
        out += [b"\r\n", content]
        self.transport.write(b"".join(out))  # held to the end of the turn (see CorkedTransport)
        self.on_response_complete()

    def _hand_on(self, *, complete: bool) -> None:
        """The held request to uvicorn's own callbacks, as the parser would have made them."""
        held, self.held = self.held or [], None
        super().on_headers_complete()
        if held:
            super().on_body(b"".join(held))
        if complete:
            super().on_message_complete()
