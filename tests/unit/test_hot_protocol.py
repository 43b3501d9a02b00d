"""The fakes' lean HTTP front (``stack/http_protocol.py``, :class:`HotHttpProtocol`) over real sockets: it answers a
connection's hot calls itself and hands the connection to uvicorn's protocol at the first request it does not
answer whole. Whatever a client sends after that (or instead) is answered as uvicorn answers it, in order; idle
connections close after the keep-alive timeout, and stopping the server does not wait on idle ones."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import uvicorn
from fastapi.testclient import TestClient

from avito_harness.fakes.avito.app import create_app
from avito_harness.fakes.settings import SimSettings
from avito_harness.stack.http_protocol import HELD_BODY_LIMIT, HotHttpProtocol
from avito_harness.waiting import pause, wait_until
from tests.unit.conftest import CLIENT, USER
from tests.unit.test_direct_answers import spy_on_direct_answers

FORM = "grant_type=client_credentials&client_id={client_id}&client_secret={client_secret}".format(**CLIENT).encode()


@contextmanager
def served(*, keep_alive: int = 5) -> Iterator[tuple[str, Any]]:
    """A fake Avito on the lean front; yields its ``host:port`` and the app."""
    app = create_app(SimSettings(avito_port=0, n8n_port=0))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, log_level="warning", http=HotHttpProtocol, timeout_keep_alive=keep_alive, proxy_headers=False,
                            timeout_graceful_shutdown=1)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    assert wait_until(lambda: server.started, 10, interval=0.01)
    try:
        yield f"127.0.0.1:{sock.getsockname()[1]}", app
    finally:
        server.should_exit = True
        thread.join(10)


def token_request(host: str, *, version: bytes = b"1.1", extra: bytes = b"") -> bytes:
    return (b"POST /token HTTP/%s\r\nHost: %s\r\nContent-Type: application/x-www-form-urlencoded\r\n%s"
            b"Content-Length: %d\r\n\r\n%s" % (version, host.encode(), extra, len(FORM), FORM))


def read_answer(sock: socket.socket, buffer: bytes = b"") -> tuple[bytes, bytes, bytes]:
    """One answer with a Content-Length: (head, body, what was read past it)."""
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed before an answer: {buffer!r}")
        buffer += chunk
    head, _, rest = buffer.partition(b"\r\n\r\n")
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:"))
    while len(rest) < length:
        rest += sock.recv(65536)
    return head, rest[:length], rest[length:]


def closed_by_server(sock: socket.socket, within: float) -> bool:
    sock.settimeout(within)
    try:
        return sock.recv(1) == b""
    except TimeoutError:
        return False


def test_a_connection_goes_on_the_framework_way_after_its_first_other_request_and_keeps_its_order() -> None:
    with served() as (host, app):
        answered = spy_on_direct_answers(app)
        with socket.create_connection(tuple(host.split(":")), timeout=10) as sock:  # type: ignore[arg-type]
            sock.sendall(token_request(host))
            head, body, _ = read_answer(sock)
            token = json.loads(body)["access_token"]
            chats = (b"GET /messenger/v2/accounts/%d/chats HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\n\r\n"
                     % (USER, host.encode(), token.encode()))
            health = b"GET /_sim/health HTTP/1.1\r\nHost: %s\r\n\r\n" % host.encode()
            sock.sendall(health + chats)  # one write: the hand-over happens with the next request already read
            first = read_answer(sock)
            second = read_answer(sock, first[2])
            sock.sendall(chats)
            third = read_answer(sock, second[2])
    assert head.startswith(b"HTTP/1.1 200")
    assert first[0].startswith(b"HTTP/1.1 200") and json.loads(first[1])["status"] == "ok"
    assert json.loads(second[1])["chats"] and json.loads(third[1]) == json.loads(second[1])
    # the token on the front; the chat list sent behind the health check waits in uvicorn's pipeline (the ASGI
    # way); the one sent alone is answered directly again, by uvicorn's protocol (DirectHttpProtocol)
    assert answered == ["/token", f"/messenger/v2/accounts/{USER}/chats"]


def test_http_1_0_and_expect_continue_are_answered_the_framework_way() -> None:
    with served() as (host, app):
        answered = spy_on_direct_answers(app)
        with socket.create_connection(tuple(host.split(":")), timeout=10) as sock:  # type: ignore[arg-type]
            sock.sendall(token_request(host, version=b"1.0"))
            head, body, _ = read_answer(sock)
            assert closed_by_server(sock, 5)  # HTTP/1.0 without keep-alive: closed after its answer
        assert head.startswith(b"HTTP/1.1 200") and "access_token" in json.loads(body)
        with socket.create_connection(tuple(host.split(":")), timeout=10) as sock:  # type: ignore[arg-type]
            request = token_request(host, extra=b"Expect: 100-continue\r\n")
            head_part, _, form = request.partition(b"\r\n\r\n")
            sock.sendall(head_part + b"\r\n\r\n")
            interim = sock.recv(65536)
            sock.sendall(form)
            head, body, _ = read_answer(sock, interim.removeprefix(b"HTTP/1.1 100 Continue\r\n\r\n"))
        assert interim.startswith(b"HTTP/1.1 100 Continue")
        assert head.startswith(b"HTTP/1.1 200") and "access_token" in json.loads(body)
    assert answered == []


def test_a_request_that_is_not_http_gets_uvicorns_400() -> None:
    with served() as (host, _):
        with socket.create_connection(tuple(host.split(":")), timeout=10) as sock:  # type: ignore[arg-type]
            sock.sendall(b"NOT HTTP AT ALL\r\n\r\n")
            head, body, _ = read_answer(sock)
            assert closed_by_server(sock, 5)
    assert head.startswith(b"HTTP/1.1 400") and body == b"Invalid HTTP request received."


def test_a_body_in_pieces_and_a_body_past_the_held_limit() -> None:
    """A hot call's body sent in two writes is answered whole; one past the limit goes the framework way with
    what was held so far and the rest, and gets the framework's answer."""
    with served() as (host, app):
        answered = spy_on_direct_answers(app)
        url = f"http://{host}"
        token = httpx.post(f"{url}/token", content=FORM,
                           headers={"content-type": "application/x-www-form-urlencoded"}).json()["access_token"]
        chat = app.state.backend.account(USER).list_chats(limit=1)[0].id
        path = f"/messenger/v1/accounts/{USER}/chats/{chat}/messages"
        with socket.create_connection(tuple(host.split(":")), timeout=10) as sock:  # type: ignore[arg-type]
            for text in ("in two pieces", "x" * (HELD_BODY_LIMIT + 10)):
                body = json.dumps({"type": "text", "message": {"text": text}}).encode()
                sock.sendall(b"POST %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Type: "
                             b"application/json\r\nContent-Length: %d\r\n\r\n%s"
                             % (path.encode(), host.encode(), token.encode(), len(body), body[:20]))
                pause(0.05)  # real time: the server reads the first piece alone
                sock.sendall(body[20:])
                head, answer, _ = read_answer(sock)
                if text == "in two pieces":
                    assert head.startswith(b"HTTP/1.1 200") and json.loads(answer)["content"] == {"text": text}
                else:
                    reference = TestClient(create_app(SimSettings(avito_port=0, n8n_port=0), fast_routes=False))
                    expected = reference.post(path, content=body, headers={
                        "authorization": f"Bearer {reference.post('/token', content=FORM, headers={'content-type': 'application/x-www-form-urlencoded'}).json()['access_token']}",  # noqa: E501
                        "content-type": "application/json"})
                    assert head.split(b" ")[1] == str(expected.status_code).encode() and expected.status_code == 400
                    assert json.loads(answer) == expected.json()
    assert answered == ["/token", path]


def test_idle_connections_close_after_the_keep_alive_timeout_busy_ones_stay() -> None:
    with served(keep_alive=1) as (host, _):
        idle = socket.create_connection(tuple(host.split(":")), timeout=10)  # type: ignore[arg-type]
        busy = socket.create_connection(tuple(host.split(":")), timeout=10)  # type: ignore[arg-type]
        with idle, busy:
            idle.sendall(token_request(host))
            read_answer(idle)
            started = time.monotonic()
            while time.monotonic() - started < 3:
                busy.sendall(token_request(host))
                assert read_answer(busy)[0].startswith(b"HTTP/1.1 200")
                pause(0.3)  # real time: uvicorn's keep-alive timer is real
            assert closed_by_server(idle, 0.1)  # idle for 3 s: closed (between 1 and 2 s)
            busy.sendall(token_request(host))
            assert read_answer(busy)[0].startswith(b"HTTP/1.1 200")


def test_stopping_the_server_does_not_wait_for_idle_keep_alive_connections() -> None:
    with served() as (host, _):
        sock = socket.create_connection(tuple(host.split(":")), timeout=10)  # type: ignore[arg-type]
        sock.sendall(token_request(host))
        read_answer(sock)
        stopped = time.monotonic()
    took = time.monotonic() - stopped
    assert closed_by_server(sock, 1)
    sock.close()
    assert took < 1.0, f"the stop waited {took:.2f} s for an idle connection"
