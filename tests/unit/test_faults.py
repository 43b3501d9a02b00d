"""Fault rules: matching, counting, windows, probability, every effect, presets, control API."""

from __future__ import annotations

from typing import Any

import pytest

from avito_harness.fakes.faults import AVITO_PRESETS, FaultRule, FaultSet, rule_from_dict
from tests.unit.conftest import USER, get_token

SEND = "POST /messenger/v1/accounts/*/chats/*/messages"


def _pick(faults: FaultSet, n: int, now: float = 0.0, path: str = "/messenger/v1/accounts/1/chats/c/messages") -> list[bool]:
    return [faults.pick("POST", path, 1, now) is not None for _ in range(n)]


def test_times_and_after_select_which_matches_break() -> None:
    faults = FaultSet("avito")
    faults.add(FaultRule(route=SEND, times=2, after=1))
    assert _pick(faults, 5) == [False, True, True, False, False]


def test_permanent_rule_and_non_matching_requests() -> None:
    faults = FaultSet("avito")
    faults.add(FaultRule(route=SEND, times=None))
    assert _pick(faults, 3) == [True, True, True]
    assert faults.pick("GET", "/messenger/v2/accounts/1/chats", 1, 0) is None


def test_account_and_service_must_match() -> None:
    faults = FaultSet("avito")
    faults.add(FaultRule(route="* *", account=7, times=None))
    assert faults.pick("GET", "/x", 1, 0) is None
    assert faults.pick("GET", "/x", 7, 0) is not None
    assert not FaultRule(service="n8n").matches("avito", "GET", "/x", None)


def test_time_window_on_the_clock() -> None:
    faults = FaultSet("avito")
    faults.add(FaultRule(route="* *", times=None, active_from=100, active_until=200))
    assert [faults.pick("GET", "/x", None, t) is not None for t in (99, 100, 199, 200)] == [False, True, True, False]


def test_probability_is_seeded_and_reproducible() -> None:
    def run(seed: int) -> list[bool]:
        faults = FaultSet("avito", seed=seed)
        faults.add(FaultRule(route="* *", times=None, probability=0.3))
        return _pick(faults, 200)

    assert run(1) == run(1)
    assert 30 < sum(run(1)) < 90


def test_first_matching_rule_wins_and_unfired_is_reported() -> None:
    faults = FaultSet("avito")
    first = faults.add(FaultRule(route=SEND, status=429))
    never = faults.add(FaultRule(route="DELETE /never", status=500, name="never"))
    optional = faults.add(FaultRule(route="DELETE /never", required=False))
    rule = faults.pick("POST", "/messenger/v1/accounts/1/chats/c/messages", 1, 0)
    assert rule is first
    assert faults.unfired() == [never]
    assert optional not in faults.unfired()


@pytest.mark.parametrize(
    "bad",
    [
        {"route": "no-space"},
        {"effect": "explode"},
        {"probability": 2},
        {"times": 0},
        {"after": -1},
        {"status": 42},
        {"preset": "nope"},
        {"colour": "red"},
        {"delay": 999},
    ],
)
def test_invalid_rules_are_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        rule_from_dict(bad)


@pytest.mark.parametrize("preset", sorted(p for p in AVITO_PRESETS if AVITO_PRESETS[p].get("status")))
def test_each_error_preset_answers_in_avitos_shape(api: Any, auth: dict[str, str], preset: str) -> None:
    api.post("/_sim/faults", json={"preset": preset, "route": "GET /messenger/v2/accounts/*/chats"})
    response = api.get(f"/messenger/v2/accounts/{USER}/chats", headers=auth)
    assert response.status_code == AVITO_PRESETS[preset]["status"]
    assert response.json()["error"]["code"] == response.status_code
    if preset.endswith("retry_after"):
        assert response.headers["Retry-After"] == "30"
    elif preset.startswith("rate_limited"):
        assert "Retry-After" not in response.headers
    assert api.get(f"/messenger/v2/accounts/{USER}/chats", headers=auth).status_code == 200


def test_custom_body_and_headers(api: Any, auth: dict[str, str]) -> None:
    api.post("/_sim/faults", json={"route": "GET /core/*", "status": 502, "body": "upstream broke", "headers": {"X-Why": "test"}})
    response = api.get("/core/v1/accounts/self", headers=auth)
    assert (response.status_code, response.text, response.headers["x-why"]) == (502, "upstream broke", "test")


def test_dropped_connection_stops_mid_answer(app: Any) -> None:
    """In-process the cut shows as a body shorter than promised; over a socket it is a protocol error."""
    from fastapi.testclient import TestClient

    with TestClient(app) as raw:
        raw.post("/_sim/faults", json={"preset": "dropped", "route": "POST /token"})
        response = raw.post("/token", data={"grant_type": "client_credentials"})
    assert int(response.headers["content-length"]) > len(response.content)


def test_fault_can_target_one_account(api: Any, auth: dict[str, str]) -> None:
    other = api.post("/_sim/accounts", json={}).json()
    api.post("/_sim/faults", json={"preset": "server_500", "account": other["user_id"], "times": None, "required": False})
    assert api.get(f"/messenger/v2/accounts/{USER}/chats", headers=auth).status_code == 200
    creds = api.get(f"/_sim/accounts/{other['user_id']}").json()
    other_auth = {"Authorization": f"Bearer {get_token(api, client_id=creds['client_id'], client_secret=creds['client_secret'])}"}
    assert api.get(f"/messenger/v2/accounts/{other['user_id']}/chats", headers=other_auth).status_code == 500


def test_faults_are_listed_counted_removed_and_journaled(api: Any, auth: dict[str, str]) -> None:
    rule = api.post("/_sim/faults", json={"preset": "unavailable_503", "route": "GET /messenger/*", "times": 1}).json()
    api.get(f"/messenger/v2/accounts/{USER}/chats", headers=auth)
    listed = api.get("/_sim/faults").json()["faults"]
    assert listed[0]["fired"] == 1 and listed[0]["seen"] == 1
    assert api.get("/_sim/faults/unfired").json()["faults"] == []
    entry = api.get("/_sim/journal", params={"status": 503}).json()["requests"][0]
    assert entry["fault"] == "unavailable_503"
    assert api.delete(f"/_sim/faults/{rule['id']}").status_code == 200
    assert api.delete(f"/_sim/faults/{rule['id']}").status_code == 404
    bad = api.post("/_sim/faults", json={"route": "oops"})
    assert bad.status_code == 422 and "route" in bad.json()["error"]["message"]


def test_delay_effect_answers_normally_after_a_short_real_wait(api: Any, auth: dict[str, str]) -> None:
    api.post("/_sim/faults", json={"effect": "delay", "delay": 0.2, "route": "GET /core/*"})
    response = api.get("/core/v1/accounts/self", headers=auth)
    assert response.status_code == 200
    entry = api.get("/_sim/journal", params={"path": "/core/*"}).json()["requests"][-1]
    assert entry["duration_ms"] >= 200


def test_control_paths_are_never_faulted(api: Any, auth: dict[str, str]) -> None:
    api.post("/_sim/faults", json={"route": "* *", "status": 500, "times": None, "required": False})
    assert api.get("/_sim/faults").status_code == 200
    assert api.get(f"/messenger/v2/accounts/{USER}/chats", headers=auth).status_code == 500


def test_lost_answer_processes_the_request_then_cuts_the_connection(app: Any, auth: dict[str, str]) -> None:
    from fastapi.testclient import TestClient

    with TestClient(app) as raw:
        chat_id = raw.get(f"/messenger/v2/accounts/{USER}/chats", headers=auth).json()["chats"][0]["id"]
        raw.post("/_sim/faults", json={"preset": "answer_lost", "route": "POST /messenger/v1/*"})
        cut = raw.post(f"/messenger/v1/accounts/{USER}/chats/{chat_id}/messages",
                       json={"type": "text", "message": {"text": "дошло?"}}, headers=auth)
        assert int(cut.headers["content-length"]) > len(cut.content)
        listed = raw.get(f"/messenger/v3/accounts/{USER}/chats/{chat_id}/messages/", headers=auth).json()["messages"]
    assert listed[0]["content"] == {"text": "дошло?"}
