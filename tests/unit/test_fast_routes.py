"""The fast routes answer exactly as the framework routes they shortcut: the same requests, in the same order,
to a fake Avito with them and to one without, get the same status, headers and bytes, and leave the same journal.

Requests are drawn from what clients really send and get wrong: good and bad tokens, another account's path,
expired tokens, odd paging, bodies that are not JSON or not a send, texts at and past Avito's limit, rate limits.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from avito_harness.fakes.avito.app import create_app
from avito_harness.fakes.clock import Clock, FakeClock
from avito_harness.fakes.settings import SimSettings
from tests.unit.conftest import CLIENT, USER

START = 1764590400.0
TOKEN_FORM = {"grant_type": "client_credentials", **CLIENT}

# weighted towards requests that get through, where the answers carry the most
auths = st.sampled_from(["good"] * 5 + ["none", "Bearer not-a-token", "Basic c2ltOnNpbQ==", "bearer-lowercase"])
users = st.sampled_from([str(USER)] * 4 + [str(USER + 1), "0" + str(USER)])
chats = st.sampled_from(["first"] * 4 + ["unknown-chat", "чат"])
numbers = st.sampled_from(["", "0", "1", "5", "100", "101", "1000", "1001", "-1", "abc", "0100", "१"])
query_keys = st.sampled_from(["limit", "offset", "unread_only", "chat_types", "item_ids", "other"])
query_values = numbers | st.sampled_from(["true", "false", "yes", "u2i", "u2i,u2u", "a2u", " ", "x", "12,y"])
queries = st.lists(st.tuples(query_keys, query_values), max_size=3)
texts = st.text(max_size=20) | st.sampled_from(["", " ", "x" * 1000, "x" * 1001, "Привет 🔋\u2028\x00"])
bodies = st.one_of(
    texts.map(lambda t: json.dumps({"type": "text", "message": {"text": t}}).encode()),
    texts.map(lambda t: json.dumps({"type": "text", "message": {"text": t}, "extra": [1]}, ensure_ascii=False)
              .encode()),
    st.sampled_from([b"", b"{", b"[]", b'{"type": "image", "message": {"text": "hi"}}', b'{"type": "text"}',
                     b'{"type": "text", "message": {"text": 5}}', b"\xff\xfe"]),
)
content_types = st.sampled_from(["application/json", "application/json; charset=utf-8", "text/plain", None,
                                 "APPLICATION/JSON"])
token_bodies = st.sampled_from([
    ("application/x-www-form-urlencoded", "grant_type=client_credentials&client_id={id}&client_secret={secret}"),
    ("application/x-www-form-urlencoded", "grant_type=client_credentials&client_id={id}&client_secret=wrong"),
    ("application/x-www-form-urlencoded", "client_id={id}&client_secret={secret}"),
    ("application/x-www-form-urlencoded", "grant_type=password&client_id={id}&client_secret={secret}"),
    ("application/json", '{{"grant_type": "client_credentials", "client_id": "{id}", "client_secret": "{secret}"}}'),
    ("application/json", "{{not json"),
    (None, ""),
])

requests = st.one_of(
    st.tuples(st.just("chats"), auths, users, st.just(""), queries, st.just(b""), st.none()),
    st.tuples(st.just("messages"), auths, users, chats, queries, st.just(b""), st.none()),
    st.tuples(st.just("send"), auths, users, chats, st.just([]), bodies, content_types),
    st.tuples(st.just("token"), st.just("none"), st.just(""), st.just(""), queries, token_bodies, st.none()),
    st.tuples(st.just("advance"), st.just("none"), st.just(""), st.sampled_from(["30", "86401"]),
              st.just([]), st.just(b""), st.none()),
)


def _stack(fast: bool, limits: dict[str, Any]) -> tuple[TestClient, Clock]:
    clock = FakeClock(START)
    app = create_app(SimSettings(avito_port=0, n8n_port=0), clock=clock,
                     transport=httpx.MockTransport(lambda r: httpx.Response(200, json={})), fast_routes=fast)
    client = TestClient(app)
    if limits:
        assert client.patch(f"/_sim/accounts/{USER}/settings", json={"rate_limits": limits}).status_code == 200
    return client, clock


def _send(client: TestClient, clock: Clock, request: tuple[Any, ...], token: str, chat: str) -> httpx.Response | None:
    kind, auth, user, chat_id, query, body, ctype = request
    if kind == "advance":
        clock.advance(float(chat_id))
        return None
    headers = {"authorization": {"good": f"Bearer {token}", "bearer-lowercase": f"bearer {token}"}.get(auth, auth)}
    if auth == "none":
        headers = {}
    chat_id = chat if chat_id == "first" else chat_id
    if kind == "chats":
        return client.get(f"/messenger/v2/accounts/{user}/chats", params=query, headers=headers)
    if kind == "messages":
        return client.get(f"/messenger/v3/accounts/{user}/chats/{chat_id}/messages/", params=query, headers=headers)
    if kind == "send":
        if ctype:
            headers["content-type"] = ctype
        return client.post(f"/messenger/v1/accounts/{user}/chats/{chat_id}/messages", content=body, headers=headers)
    token_ctype, template = body
    raw = template.format(id=CLIENT["client_id"], secret=CLIENT["client_secret"]).encode()
    return client.post("/token", params=query, content=raw, headers={"content-type": token_ctype} if token_ctype else {})


def _journal(client: TestClient) -> list[dict[str, Any]]:
    entries = client.app.state.backend.journal.entries()  # type: ignore[attr-defined]
    return [{k: v for k, v in e.to_dict().items() if k not in ("duration_ms", "seen_at")} for e in entries]


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(script=st.lists(requests, min_size=1, max_size=12),
       limits=st.sampled_from([{}, {"per_minute": 4}, {"per_operation": {"postSendMessage": 2}, "retry_after": True}]))
def test_fast_routes_answer_byte_for_byte_as_the_framework_routes(script: list[tuple[Any, ...]],
                                                                  limits: dict[str, Any]) -> None:
    (fast, fast_clock), (slow, slow_clock) = _stack(True, limits), _stack(False, limits)
    token = fast.post("/token", data=TOKEN_FORM).json()["access_token"]
    assert slow.post("/token", data=TOKEN_FORM).json()["access_token"] == token
    chat = slow.app.state.backend.account(USER).list_chats(limit=1)[0].id  # type: ignore[attr-defined]
    for request in script:
        ours, theirs = _send(fast, fast_clock, request, token, chat), _send(slow, slow_clock, request, token, chat)
        if ours is None or theirs is None:
            continue
        assert (ours.status_code, ours.headers.raw, ours.content) == (
            theirs.status_code, theirs.headers.raw, theirs.content), request
    assert _journal(fast) == _journal(slow)


def test_a_body_the_fast_route_does_not_take_reaches_the_framework_whole() -> None:
    """A send the fast route hands on (not JSON) is still answered from the body the client sent."""
    client, _ = _stack(True, {})
    token = client.post("/token", data=TOKEN_FORM).json()["access_token"]
    chat = client.app.state.backend.account(USER).list_chats(limit=1)[0].id  # type: ignore[attr-defined]
    answer = client.post(f"/messenger/v1/accounts/{USER}/chats/{chat}/messages", content=b'{"type": "text"}',
                         headers={"authorization": f"Bearer {token}", "content-type": "application/json"})
    assert answer.status_code == 400
    assert "message" in answer.json()["error"]["fields"]


def test_an_account_id_past_64_bits_is_answered_as_the_framework_answers_it() -> None:
    """The fast routes' JSON writer stops at 64-bit integers; Avito ids are far below, a test's may not be."""
    answers = []
    for fast in (True, False):
        client, _ = _stack(fast, {})
        made = client.post("/_sim/accounts", json={"user_id": 10**20, "demo_data": True}).json()
        token = client.post("/token", data={"grant_type": "client_credentials", "client_id": made["client_id"],
                                            "client_secret": made["client_secret"]}).json()["access_token"]
        chats = client.get(f"/messenger/v2/accounts/{10**20}/chats", headers={"authorization": f"Bearer {token}"})
        answers.append((chats.status_code, chats.headers.raw, chats.content))
    assert answers[0] == answers[1]
    assert answers[0][0] == 200 and str(10**20).encode() in answers[0][2]
