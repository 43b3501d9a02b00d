"""What the fake Avito tells the tester (never the client) about a near miss: HTTP Basic, another API version."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi.testclient import TestClient

from simulator.avito.app import create_app
from simulator.clock import FakeClock
from simulator.settings import SimSettings
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
