"""Scenarios: faults, limits and delivery as data; load, export, replay."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from avito_harness.fakes.scenario import dump_scenario, read_scenario, validate_scenario
from tests.unit.conftest import USER

SCENARIO = {
    "version": 1,
    "clock": {"frozen": True, "now": 1764600000},
    "avito": {
        "faults": [{"preset": "rate_limited_429_retry_after", "route": "GET /messenger/v2/*", "times": 2}],
        "accounts": [{"user_id": USER, "settings": {"auth_error_status": 403, "rate_limits": {"per_minute": 50}}}],
    },
}


def test_load_applies_faults_settings_and_clock(api: Any, auth: dict[str, str], clock: Any) -> None:
    assert api.post("/_sim/scenario", json=SCENARIO).status_code == 200
    assert clock.now() == 1764600000
    chats = f"/messenger/v2/accounts/{USER}/chats"
    assert [api.get(chats, headers=auth).status_code for _ in range(3)] == [429, 429, 200]
    assert api.get(f"/_sim/accounts/{USER}").json()["settings"]["auth_error_status"] == 403


def test_export_then_load_reproduces_the_same_setup(api: Any) -> None:
    api.post("/_sim/scenario", json=SCENARIO)
    exported = api.get("/_sim/scenario").json()
    api.post("/_sim/reset")
    assert api.get("/_sim/faults").json()["faults"] == []
    api.post("/_sim/scenario", json=exported)
    again = api.get("/_sim/scenario").json()
    assert again["avito"] == exported["avito"]


def test_scenario_files_in_yaml_and_json(tmp_path: Path) -> None:
    yaml_file = tmp_path / "incident.yaml"
    yaml_file.write_text(dump_scenario(SCENARIO), encoding="utf-8")
    json_file = tmp_path / "incident.json"
    json_file.write_text('{"avito": {"faults": [{"preset": "server_500"}]}}', encoding="utf-8")
    assert read_scenario(yaml_file) == SCENARIO
    assert read_scenario(json_file)["avito"]["faults"][0]["preset"] == "server_500"


@pytest.mark.parametrize("bad", [[1, 2], {"weather": 1}, {"version": 2}, {"avito": []}, {"clock": 5}])
def test_invalid_scenarios_are_refused(bad: Any) -> None:
    with pytest.raises(ValueError):
        validate_scenario(bad)


def test_invalid_scenario_over_http_is_a_400_naming_it(api: Any) -> None:
    response = api.post("/_sim/scenario", json={"avito": {"faults": [{"preset": "nope"}]}})
    assert response.status_code == 400 and "nope" in response.json()["error"]["message"]


def test_reset_restores_seeded_demo_data(api: Any, auth: dict[str, str]) -> None:
    before = api.get(f"/_sim/accounts/{USER}").json()
    api.post("/_sim/accounts", json={})
    api.post("/_sim/faults", json={"preset": "server_500", "required": False})
    api.post("/_sim/reset")
    assert api.get(f"/_sim/accounts/{USER}").json() == before
    assert len(api.get("/_sim/accounts").json()["accounts"]) == 1
    assert api.get("/_sim/faults").json()["faults"] == []
    assert api.get("/_sim/journal").json()["requests"] == []
