"""What the fake Avito tells the tester (never the client) about a near miss: HTTP Basic, another API version."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi.testclient import TestClient

from avito_harness.fakes.avito.app import create_app
from avito_harness.fakes.clock import FakeClock
from avito_harness.fakes.settings import SimSettings
from tests.unit.conftest import USER

BASIC = httpx.BasicAuth("sim-client-id", "sim-client-secret")


def _journal_last(api: Any) -> dict[str, Any]:
    entry: dict[str, Any] = api.get("/_sim/journal").json()["requests"][-1]
    return entry


def test_token_by_http_basic_is_refused_like_avito_and_the_journal_says_why(api: Any) -> None:
    answer = api.post("/token", data={"grant_type": "client_credentials"}, auth=BASIC)
    assert answer.status_code == 400
    assert answer.json() == {"error": "invalid_request",
                             "error_description": "missing parameter(s): client_id, client_secret"}
    entry = _journal_last(api)
    assert "HTTP Basic" in entry["extra"]["hint"] and "form fields" in entry["extra"]["hint"]
    assert "missing parameter(s)" in entry["extra"]["error"]
    assert "HTTP Basic" not in answer.text  # Avito's answer stays Avito's


def test_token_by_http_basic_is_accepted_when_configured() -> None:
    app = create_app(SimSettings(token_basic_auth=True, clock="frozen"), clock=FakeClock())
    with TestClient(app) as api:
        answer = api.post("/token", data={"grant_type": "client_credentials"}, auth=BASIC)
        assert answer.status_code == 200 and answer.json()["access_token"]


def test_a_near_miss_404_names_the_path_avito_serves(api: Any, auth: dict[str, str]) -> None:
    answer = api.post(f"/messenger/v2/accounts/{USER}/chats/u2i-x/messages", json={}, headers=auth)
    assert answer.status_code == 404 and "serves" not in answer.text
    hint = _journal_last(api)["extra"]["hint"]
    assert hint == "no such path at Avito; Avito serves POST /messenger/v1/accounts/{user_id}/chats/{chat_id}/messages"
    api.get("/nothing/here", headers=auth)
    assert "hint" not in _journal_last(api)["extra"]


def test_a_refused_token_is_explained_in_the_journal_only(api: Any, auth: dict[str, str], backend: Any) -> None:
    chats = f"/messenger/v2/accounts/{USER}/chats"
    assert api.get(chats).status_code == 401
    assert "no Authorization header" in _journal_last(api)["extra"]["hint"]
    backend.tokens.expire(USER)
    answer = api.get(chats, headers=auth)
    assert answer.status_code == 401 and "expired" not in answer.text
    assert "expired" in _journal_last(api)["extra"]["hint"]


def test_tokens_stay_valid_across_a_reset_as_at_avito(api: Any, auth: dict[str, str]) -> None:
    """A gateway that keeps running between two tests holds its token: the reset is a new test, not a new Avito."""
    assert api.post("/_sim/reset", params={"seed": 7}).status_code == 200
    assert api.get(f"/messenger/v2/accounts/{USER}/chats", headers=auth).status_code == 200


def test_a_fault_waits_for_a_request_avito_would_process(api: Any, auth: dict[str, str]) -> None:
    """A call refused for its token gets Avito's 401, not the fault: the fault stays for the call it was meant for."""
    api.post("/_sim/faults", json={"preset": "server_500", "route": "GET /messenger/v2/accounts/*/chats"})
    chats = f"/messenger/v2/accounts/{USER}/chats"
    assert api.get(chats, headers={"Authorization": "Bearer not-a-token"}).status_code == 401
    assert api.get(chats, headers=auth).status_code == 500
    assert api.get(chats, headers=auth).status_code == 200
