"""The fake n8n receiver: records, answers like n8n, honours faults, waits."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from avito_harness.fakes.clock import FakeClock
from avito_harness.fakes.n8n.app import create_app
from avito_harness.fakes.settings import SimSettings


@pytest.fixture
def n8n() -> Iterator[TestClient]:
    with TestClient(create_app(SimSettings(), clock=FakeClock())) as client:
        yield client


def test_records_body_headers_and_time(n8n: TestClient) -> None:
    response = n8n.post("/webhook/avito", json={"channel": "avito", "text": "привет"}, headers={"X-Trace": "1"})
    assert response.status_code == 200 and response.json() == {"message": "Workflow was started"}
    (item,) = n8n.get("/_sim/received").json()["received"]
    assert item["body"] == {"channel": "avito", "text": "привет"}
    assert item["headers"]["x-trace"] == "1" and item["path"] == "avito" and item["time"] > 0


def test_unregistered_path_answers_like_n8n(n8n: TestClient) -> None:
    response = n8n.post("/webhook/other", json={})
    assert response.status_code == 404
    assert response.json()["message"] == 'The requested webhook "POST other" is not registered.'
    assert n8n.post("/_sim/webhooks", json={"path": "other"}).status_code == 201
    assert n8n.post("/webhook/other", json={}).status_code == 200


def test_invalid_json_is_refused_and_not_recorded(n8n: TestClient) -> None:
    response = n8n.post("/webhook/avito", content=b"{nope", headers={"Content-Type": "application/json"})
    assert response.status_code == 422
    assert n8n.get("/_sim/received").json()["received"] == []


def test_faults_make_n8n_fail_then_recover(n8n: TestClient) -> None:
    n8n.post("/_sim/faults", json={"route": "POST /webhook/*", "status": 500, "times": 2})
    codes = [n8n.post("/webhook/avito", json={"n": i}).status_code for i in range(3)]
    assert codes == [500, 500, 200]
    assert [r["body"]["n"] for r in n8n.get("/_sim/received").json()["received"]] == [2]
    assert n8n.get("/_sim/journal", params={"status": 500}).json()["requests"][0]["fault"]


def test_wait_returns_what_arrived_or_408_on_timeout(n8n: TestClient) -> None:
    n8n.post("/webhook/avito", json={"a": 1})
    assert len(n8n.get("/_sim/received/wait", params={"count": 1, "timeout": 1}).json()["received"]) == 1
    late = n8n.get("/_sim/received/wait", params={"count": 2, "timeout": 0.1})
    assert late.status_code == 408 and "1 of 2" in late.json()["message"]


def test_clear_and_reset(n8n: TestClient) -> None:
    n8n.post("/webhook/avito", json={})
    n8n.delete("/_sim/received")
    assert n8n.get("/_sim/received").json()["received"] == []
    n8n.post("/_sim/webhooks", json={"path": "x"})
    n8n.post("/_sim/reset")
    assert n8n.post("/webhook/x", json={}).status_code == 404


def test_test_mode_path_is_recorded_as_such(n8n: TestClient) -> None:
    n8n.post("/webhook-test/avito", json={})
    assert n8n.get("/_sim/received").json()["received"][0]["test_mode"] is True


def test_bad_control_input_is_a_400(n8n: TestClient) -> None:
    assert n8n.get("/_sim/received/wait", params={"count": 0}).status_code == 400
    assert n8n.post("/_sim/faults", json={"route": "x"}).status_code == 422  # a rule that cannot be built


def test_scenario_export_and_load(n8n: TestClient) -> None:
    doc: dict[str, Any] = {"n8n": {"faults": [{"route": "POST /webhook/*", "status": 503}], "paths": ["bat-in"]}}
    assert n8n.post("/_sim/scenario", json=doc).status_code == 200
    exported = n8n.get("/_sim/scenario").json()["n8n"]
    assert exported["paths"] == ["avito", "bat-in"] and exported["faults"][0]["status"] == 503
    assert n8n.post("/webhook/bat-in", json={}).status_code == 503


def test_the_recorder_answers_the_shops_other_services_and_keeps_each_call(n8n: TestClient) -> None:
    """What a user's workflows call on hosts mapped to ``recorder``: 200, and the call in the journal."""
    answer = n8n.post("/_recorder/crm.shop.example/hooks/appeal-ready", json={"appeal_id": 7})
    assert answer.status_code == 200 and answer.json()["recorded"] == "POST /crm.shop.example/hooks/appeal-ready"
    (call,) = n8n.get("/_sim/journal").json()["requests"]
    assert (call["method"], call["path"], call["body"]) == ("POST", "/_recorder/crm.shop.example/hooks/appeal-ready",
                                                            {"appeal_id": 7})
