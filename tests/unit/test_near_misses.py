"""Near misses served as the call they nearly are (what the acceptance run asks for), noted for the judge.

Each near miss is served as Avito serves the correct call, so a client that gets one thing wrong still shows
what lies deeper; the journal keeps the request as it came, with a reason code, ``served`` and a hint. The
default (``refuse``) is Avito's own refusal: tests/unit/test_oauth_hints.py, test_chats.py, test_webhooks.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from avito_harness.fakes.avito.app import create_app
from avito_harness.fakes.clock import FakeClock
from avito_harness.fakes.settings import SimSettings
from tests.unit.conftest import CLIENT, USER, HookSink, get_token


@pytest.fixture
def served(sink: HookSink) -> Iterator[TestClient]:
    app = create_app(SimSettings(avito_port=0, n8n_port=0, near_misses="serve"), clock=FakeClock(),
                     transport=httpx.MockTransport(sink))
    with TestClient(app) as client:
        yield client


def _last(api: TestClient) -> dict[str, Any]:
    entry: dict[str, Any] = api.get("/_sim/journal").json()["requests"][-1]
    return entry


def _chat(api: TestClient, headers: dict[str, str]) -> str:
    chats = api.get(f"/messenger/v2/accounts/{USER}/chats", headers=headers).json()["chats"]
    return str(chats[0]["id"])


def test_a_token_by_http_basic_is_served_and_noted(served: TestClient) -> None:
    answer = served.post("/token", data={"grant_type": "client_credentials"},
                         auth=httpx.BasicAuth(CLIENT["client_id"], CLIENT["client_secret"]))
    assert answer.status_code == 200 and answer.json()["access_token"]
    entry = _last(served)
    assert (entry["extra"]["reason"], entry["extra"]["served"]) == ("token_basic_auth", True)
    assert "HTTP Basic" in entry["extra"]["hint"] and "--strict-avito" in entry["extra"]["hint"]


def test_a_send_on_another_api_version_lands_and_the_journal_keeps_the_path_it_came_on(served: TestClient) -> None:
    headers = {"Authorization": f"Bearer {get_token(served)}"}
    chat = _chat(served, headers)
    answer = served.post(f"/messenger/v2/accounts/{USER}/chats/{chat}/messages", headers=headers,
                         json={"message": {"text": "на v2"}, "type": "text"})
    assert answer.status_code == 200 and answer.json()["content"] == {"text": "на v2"}
    entry = _last(served)
    assert entry["path"] == f"/messenger/v2/accounts/{USER}/chats/{chat}/messages"
    assert (entry["extra"]["reason"], entry["extra"]["served"]) == ("other_api_version", True)
    assert "Avito serves POST /messenger/v1/accounts/{user_id}/chats/{chat_id}/messages" in entry["extra"]["hint"]
    texts = [m["content"].get("text") for m in served.get(f"/_sim/accounts/{USER}/chats/{chat}").json()["messages"]]
    assert "на v2" in texts


def test_a_read_without_the_trailing_slash_is_served_too(served: TestClient) -> None:
    headers = {"Authorization": f"Bearer {get_token(served)}"}
    chat = _chat(served, headers)
    answer = served.get(f"/messenger/v3/accounts/{USER}/chats/{chat}/messages", headers=headers)
    assert answer.status_code == 200 and "messages" in answer.json()
    assert _last(served)["extra"]["reason"] == "other_api_version"


def test_a_send_without_type_is_served_as_a_text_send(served: TestClient) -> None:
    headers = {"Authorization": f"Bearer {get_token(served)}"}
    chat = _chat(served, headers)
    answer = served.post(f"/messenger/v1/accounts/{USER}/chats/{chat}/messages", headers=headers,
                         json={"message": {"text": "без типа"}})
    assert answer.status_code == 200 and answer.json()["type"] == "text"
    assert (_last(served)["extra"]["reason"], _last(served)["extra"]["served"]) == ("send_without_type", True)
    assert _last(served)["body"] == {"message": {"text": "без типа"}}  # the journal keeps the body as it came


def test_a_fault_hits_the_call_a_near_miss_is_served_as(served: TestClient) -> None:
    """A scenario's fault on sends still fires for a gateway that sends on another version."""
    headers = {"Authorization": f"Bearer {get_token(served)}"}
    chat = _chat(served, headers)
    served.post("/_sim/faults", json={"preset": "server_500", "route": "POST /messenger/v1/accounts/*/chats/*/messages"})
    answer = served.post(f"/messenger/v2/accounts/{USER}/chats/{chat}/messages", headers=headers,
                         json={"message": {"text": "x"}, "type": "text"})
    assert answer.status_code == 500
    assert served.get("/_sim/faults/unfired").json()["faults"] == []


def test_a_subscription_whose_probe_fails_is_served_and_noted(served: TestClient, sink: HookSink) -> None:
    sink.status = 400
    headers = {"Authorization": f"Bearer {get_token(served)}"}
    answer = served.post("/messenger/v3/webhook", json={"url": "http://127.0.0.1:9/hook"}, headers=headers)
    assert answer.status_code == 200
    assert (_last(served)["extra"]["reason"], _last(served)["extra"]["served"]) == ("probe_refused", True)
    listed = served.post("/messenger/v1/subscriptions", headers=headers).json()["subscriptions"]
    assert [s["url"] for s in listed] == ["http://127.0.0.1:9/hook"]


def test_a_real_error_is_not_a_near_miss(served: TestClient) -> None:
    """Only a request that nearly is a served call is served: an unknown path stays Avito's 404."""
    headers = {"Authorization": f"Bearer {get_token(served)}"}
    assert served.get(f"/messenger/v2/accounts/{USER}/nothing-like-this", headers=headers).status_code == 404
    assert "served" not in _last(served)["extra"]
