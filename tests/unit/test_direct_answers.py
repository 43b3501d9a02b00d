"""The hot calls answered straight from the connection (``stack/http_protocol.py`` + ``fakes/avito/direct.py``)
are the framework routes' answers byte for byte, over a real socket: the same requests to a served fake Avito and
to one without fast routes get the same status, headers (the date aside) and bytes, and leave the same journal.
The protocol keeps HTTP's order: pipelined requests, some answered directly and some by the framework, come back
in the order sent."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from avito_harness.fakes.avito.app import create_app
from avito_harness.fakes.clock import FakeClock
from avito_harness.fakes.settings import SimSettings
from avito_harness.stack.serve import serve_in_thread
from tests.unit.conftest import CLIENT, USER
from tests.unit.test_fast_routes import START, TOKEN_FORM, _journal, _send, _stack, requests

FORM = "grant_type=client_credentials&client_id={client_id}&client_secret={client_secret}".format(**CLIENT)


@contextmanager
def served(limits: dict[str, Any], *, near_misses: str = "refuse") -> Iterator[tuple[httpx.Client, Any, FakeClock]]:
    clock = FakeClock(START)
    app = create_app(SimSettings(avito_port=0, n8n_port=0, near_misses=near_misses), clock=clock,
                     transport=httpx.MockTransport(lambda r: httpx.Response(200, json={})))
    server = serve_in_thread(app, name="avito-direct-test")
    try:
        with httpx.Client(base_url=server.url) as client:
            if limits:
                assert client.patch(f"/_sim/accounts/{USER}/settings", json={"rate_limits": limits}).status_code == 200
            yield client, app, clock
    finally:
        server.stop()


def _dateless(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    return [(k, v) for k, v in headers if k.lower() != b"date"]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(script=st.lists(requests, min_size=1, max_size=10),
       limits=st.sampled_from([{}, {"per_minute": 4}, {"per_operation": {"postSendMessage": 2}, "retry_after": True}]))
def test_direct_answers_are_the_framework_answers_byte_for_byte(script: list[tuple[Any, ...]],
                                                                limits: dict[str, Any]) -> None:
    (slow, slow_clock) = _stack(False, limits)
    with served(limits) as (fast, app, fast_clock):
        slow.app.state.backend.public_url = str(fast.base_url).rstrip("/")  # type: ignore[attr-defined] # media links
        token = fast.post("/token", data=TOKEN_FORM).json()["access_token"]
        assert slow.post("/token", data=TOKEN_FORM).json()["access_token"] == token
        chat = app.state.backend.account(USER).list_chats(limit=1)[0].id
        for request in script:
            ours = _send(fast, fast_clock, request, token, chat)  # type: ignore[arg-type]
            theirs = _send(slow, slow_clock, request, token, chat)
            if ours is None or theirs is None:
                continue
            assert (ours.status_code, _dateless(ours.headers.raw), ours.content) == (
                theirs.status_code, _dateless(theirs.headers.raw), theirs.content), request
        journal = [{k: v for k, v in e.to_dict().items() if k not in ("duration_ms", "seen_at")}
                   for e in app.state.backend.journal.entries()]
    assert [_without_host(e) for e in journal] == [_without_host(e) for e in _journal(slow)]


def _without_host(entry: dict[str, Any]) -> dict[str, Any]:
    """The two clients name different hosts and send their own header sets; the rest must agree."""
    return {k: v for k, v in entry.items() if k != "headers"}


def test_the_hot_calls_take_the_direct_path() -> None:
    """Without this the test above could pass with every request on the ASGI path."""
    with served({}) as (client, app, _):
        answered = spy_on_direct_answers(app)
        token = client.post("/token", data=TOKEN_FORM).json()["access_token"]
        client.get(f"/messenger/v2/accounts/{USER}/chats", headers={"authorization": f"Bearer {token}"})
        assert client.get("/_sim/health").status_code == 200
        client.get(f"/messenger/v2/accounts/{USER}/chats", headers={"authorization": f"Bearer {token}"})
    assert answered == ["/token", f"/messenger/v2/accounts/{USER}/chats", f"/messenger/v2/accounts/{USER}/chats"]


def spy_on_direct_answers(app: Any) -> list[str]:
    """The paths ``app.direct`` answered (whichever protocol asked it; None from it means the framework answers).
    For an app made for one test: the spy is not undone."""
    answered: list[str] = []
    original = app.direct.answer

    def spy(scope: Any, body: bytes, taken: Any) -> Any:
        reply = original(scope, body, taken)
        if reply is not None:
            answered.append(scope["path"])
        return reply

    app.direct.answer = spy
    return answered


def _raw_exchange(url: str, payload: bytes, answers: int) -> list[bytes]:
    """Send ``payload`` in one write; read ``answers`` HTTP answers (each with a Content-Length) in order."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(payload)
        buffer, out = b"", []
        while len(out) < answers:
            while b"\r\n\r\n" not in buffer:
                buffer += sock.recv(65536)
            head, _, rest = buffer.partition(b"\r\n\r\n")
            length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(
                b"content-length:"))
            while len(rest) < length:
                rest += sock.recv(65536)
            out.append(head + b"\r\n\r\n" + rest[:length])
            buffer = rest[length:]
    return out


def test_pipelined_requests_come_back_in_order_whichever_path_answers() -> None:
    with served({}) as (client, app, _):
        host = client.base_url.netloc.decode()
        token = b"POST /token HTTP/1.1\r\nHost: %s\r\nContent-Type: application/x-www-form-urlencoded\r\n" \
                b"Content-Length: %d\r\n\r\n%s" % (host.encode(), len(FORM), FORM.encode())
        health = b"GET /_sim/health HTTP/1.1\r\nHost: %s\r\n\r\n" % host.encode()
        not_json = (b"POST /messenger/v1/accounts/%d/chats/x/messages HTTP/1.1\r\nHost: %s\r\n"
                    b"Content-Type: text/plain\r\nContent-Length: 2\r\n\r\nhi" % (USER, host.encode()))
        answers = _raw_exchange(client.base_url.__str__(), token + health + not_json + token + health, 5)
    statuses = [a.split(b" ", 2)[1] for a in answers]
    assert statuses == [b"200", b"200", b"401", b"200", b"200"]
    assert b"access_token" in answers[0] and b"access_token" in answers[3]
    assert b"access_token" not in answers[1] and b"access_token" not in answers[4]


def test_a_chunked_body_is_answered_as_sent() -> None:
    """A body in chunks: held and answered directly from the whole of it."""
    with served({}) as (client, _, _):
        host = client.base_url.netloc.decode().encode()
        chunks = b"".join(b"%x\r\n%s\r\n" % (len(part), part.encode()) for part in (FORM[:10], FORM[10:])) + b"0\r\n\r\n"
        request = (b"POST /token HTTP/1.1\r\nHost: %s\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                   b"Transfer-Encoding: chunked\r\n\r\n%s" % (host, chunks))
        answer = _raw_exchange(str(client.base_url), request, 1)[0]
    assert answer.startswith(b"HTTP/1.1 200") and b"access_token" in answer


def test_an_armed_fault_sends_the_hot_calls_the_asgi_way() -> None:
    """Faults are applied by the ASGI layers: with a rule armed nothing is answered directly."""
    with served({}) as (client, app, _):
        app.state.backend.faults.add_dict({"route": "POST /token", "status": 503, "times": 1})
        assert client.post("/token", data=TOKEN_FORM).status_code == 503
        assert client.post("/token", data=TOKEN_FORM).status_code == 200
