"""HTTP/1.1 as the fakes serve it: a turn's writes leave as one send, and an app's direct answers (the hot calls)
go straight back without the ASGI round of a task and message dicts per request.

:class:`HotHttpProtocol` is what a fake's server runs: a lean front that answers a connection's hot calls itself
and hands the connection to uvicorn's protocol (:class:`DirectHttpProtocol`, which still answers hot calls
directly) at its first request it does not answer whole. A load test's connections carry nothing else, so they
never pay for uvicorn's per-request bookkeeping (its scope, its keep-alive timer re-armed per request)."""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

import httptools
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.protocols.utils import get_local_addr, get_remote_addr, is_ssl

__all__ = ["CorkedHttpProtocol", "CorkedTransport", "DirectAnswers", "DirectHttpProtocol", "HELD_BODY_LIMIT",
           "HotHttpProtocol"]

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
        # held to the end of the turn (see CorkedTransport)
        self.transport.write(render(reply[0], self.server_state.default_headers, reply[1], reply[2]))
        self.on_response_complete()

    def _hand_on(self, *, complete: bool) -> None:
        """The held request to uvicorn's own callbacks, as the parser would have made them."""
        held, self.held = self.held or [], None
        super().on_headers_complete()
        if held:
            super().on_body(b"".join(held))
        if complete:
            super().on_message_complete()


def render(status: int, default_headers: list[tuple[bytes, bytes]], headers: list[tuple[bytes, bytes]],
           content: bytes) -> bytes:
    """An answer's bytes as uvicorn writes them: status line, the server's headers (the date), the app's, body."""
    out = [STATUS_LINE[status]]
    for name, value in (*default_headers, *headers):
        out += [name, b": ", value, b"\r\n"]
    out += [b"\r\n", content]
    return b"".join(out)


class HotHttpProtocol(asyncio.Protocol):
    """The fakes' server protocol: hot calls answered here, the connection handed to uvicorn's at the first
    request that is not (see the module's docstring).

    A request is answered here when it is a plain keep-alive HTTP/1.1 request (no ``Expect``, no upgrade) that
    ``app.direct`` takes and answers. Otherwise the request so far (line, headers, any body held) is replayed to a
    :class:`DirectHttpProtocol` on the same transport and parser, which from then on is the connection's protocol:
    nothing is lost or reordered, since every earlier request here was answered whole, in order, in its turn.
    Idle connections close after uvicorn's keep-alive timeout (checked once per timeout, not re-armed per
    request: between one and two timeouts after the last request)."""

    def __init__(self, config: Any, server_state: Any, app_state: dict[str, Any],
                 _loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.config, self.server_state, self.app_state = config, server_state, app_state
        self.loop = _loop or asyncio.get_event_loop()
        self.direct: DirectAnswers | None = getattr(config.loaded_app, "direct", None)
        self.parser = httptools.HttpRequestParser(self)
        try:  # as uvicorn: answer the first of pipelined requests even when the client closed after sending them
            self.parser.set_dangerous_leniencies(lenient_data_after_close=True)
        except AttributeError:  # httptools < 0.6.3
            pass
        self.delegate: DirectHttpProtocol | None = None
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.base: dict[str, Any] = {}
        self.writes: list[bytes] = []
        self.served = self.seen = 0  # requests answered; as at the last idle check
        self.idle_check: asyncio.TimerHandle | None = None
        # the request being read
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.scope: dict[str, Any] | None = None  # once its headers are in and it is one to answer here
        self.taken: Any = None
        self.body: list[bytes] = []
        self.body_size = 0
        self.headers_done = False
        self.expect = False  # an Expect header came (uvicorn's to handle: 100-continue)

    # the connection

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self.transport = transport
        if self.direct is None or self.config.root_path or self.config.limit_concurrency is not None \
                or is_ssl(transport):
            self._hand_over(fresh=True)
            return
        self.server_state.connections.add(self)
        self.base = {"type": "http", "asgi": {"version": self.config.asgi_version, "spec_version": "2.3"},
                     "http_version": "1.1", "server": get_local_addr(transport), "client": get_remote_addr(transport),
                     "scheme": "http", "root_path": ""}
        self.idle_check = self.loop.call_later(self.config.timeout_keep_alive, self._close_if_idle)

    def connection_lost(self, exc: Exception | None) -> None:
        self.server_state.connections.discard(self)
        if self.idle_check is not None:
            self.idle_check.cancel()

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:  # only after headers this protocol handed over: uvicorn's to handle
            delegate = self._hand_over()
            if delegate._should_upgrade():
                delegate.handle_websocket_upgrade()
            else:
                delegate._unsupported_upgrade_warning()
        except httptools.HttpParserError:
            self._hand_over().send_400_response("Invalid HTTP request received.")

    def shutdown(self) -> None:
        """The server is stopping: nothing is being answered here between turns, so close (what is held first)."""
        self._flush()
        self.transport.close()

    def pause_writing(self) -> None:
        """The client reads its answers slower than it sends requests: read no more until it catches up."""
        self.transport.pause_reading()

    def resume_writing(self) -> None:
        self.transport.resume_reading()

    def _close_if_idle(self) -> None:
        if self.served == self.seen and not self.url and not self.writes:
            self.transport.close()
        else:
            self.seen = self.served
            self.idle_check = self.loop.call_later(self.config.timeout_keep_alive, self._close_if_idle)

    # the parser's callbacks (forwarded to uvicorn's protocol once it has the connection)

    def on_message_begin(self) -> None:
        if self.delegate is not None:
            self.delegate.on_message_begin()
            return
        self.url, self.headers, self.scope, self.headers_done, self.expect = b"", [], None, False, False

    def on_url(self, url: bytes) -> None:
        if self.delegate is not None:
            self.delegate.on_url(url)
            return
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.delegate is not None:
            self.delegate.on_header(name, value)
            return
        name = name.lower()
        if name == b"expect":
            self.expect = True
        self.headers.append((name, value.rstrip(b" \t")))  # as uvicorn: no trailing whitespace

    def on_headers_complete(self) -> None:
        if self.delegate is not None:
            self.delegate.on_headers_complete()
            return
        self.headers_done = True
        parser = self.parser
        if parser.get_http_version() != "1.1" or not parser.should_keep_alive() or parser.should_upgrade():
            self._hand_over()
            return
        parsed = httptools.parse_url(self.url)
        method, path = parser.get_method().decode("ascii"), parsed.path.decode("latin-1")
        taken = None
        if path.isascii() and "%" not in path and not self.expect:
            assert self.direct is not None
            taken = self.direct.takes(method, path)
        if taken is None:
            self._hand_over()
            return
        self.scope = {**self.base, "method": method, "path": path, "raw_path": parsed.path,
                      "query_string": parsed.query or b"", "headers": self.headers, "state": self.app_state.copy()}
        self.taken, self.body, self.body_size = taken, [], 0

    def on_body(self, body: bytes) -> None:
        if self.delegate is not None:
            self.delegate.on_body(body)
            return
        self.body.append(body)
        self.body_size += len(body)
        if self.body_size > HELD_BODY_LIMIT:
            self._hand_over()

    def on_message_complete(self) -> None:
        if self.delegate is not None:
            self.delegate.on_message_complete()
            return
        assert self.direct is not None and self.scope is not None
        reply = self.direct.answer(self.scope, b"".join(self.body), self.taken)
        if reply is None:
            self._hand_over(complete=True)
            return
        self.url, self.body = b"", []
        self.served += 1
        self.server_state.total_requests += 1
        if not self.writes:
            self.loop.call_soon(self._flush)
        self.writes.append(render(reply[0], self.server_state.default_headers, reply[1], reply[2]))

    def _flush(self) -> None:
        """What the turn wrote, as one send (as :class:`CorkedTransport` does, without a wrapper between)."""
        if self.writes:
            writes, self.writes = self.writes, []
            if not self.transport.is_closing():
                self.transport.write(b"".join(writes))

    def _hand_over(self, *, complete: bool = False, fresh: bool = False) -> DirectHttpProtocol:
        """uvicorn's protocol takes the connection, told the request read so far as its parser would have
        (``fresh``: nothing read yet, so it keeps its own parser and nothing is forwarded)."""
        if self.delegate is not None:
            return self.delegate
        self._flush()
        if self.idle_check is not None:
            self.idle_check.cancel()
        self.server_state.connections.discard(self)
        delegate = self.delegate = DirectHttpProtocol(config=self.config, server_state=self.server_state,
                                                      app_state=self.app_state, _loop=self.loop)
        delegate.connection_made(self.transport)
        if not fresh:
            delegate.parser = self.parser  # mid-stream: its callbacks come here and are forwarded
        self.transport.set_protocol(delegate)
        if self.url:  # mid-request: what the parser told us so far, told again
            delegate.on_message_begin()
            delegate.on_url(self.url)
            for name, value in self.headers:
                delegate.on_header(name, value)
            if self.headers_done:
                delegate.on_headers_complete()
                if self.body:
                    delegate.on_body(b"".join(self.body))
                if complete:
                    delegate.on_message_complete()
        return delegate
