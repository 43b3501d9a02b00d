"""A recorded incident in a user's own feature: ``Given Avito behaves as recorded in "FILE"`` makes the fake
Avito answer as the recording says, and ``When Avito delivers the recorded webhooks`` delivers them again; our
gateway is judged on it as on anything else, and a planted-defect gateway fails on it with its defect named.
Also the commands: ``scenario from-recording`` keeps the recording as a scenario file ``sim`` loads."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import yaml

from avito_harness.fakes.scenario import validate_scenario
from avito_harness.fakes.settings import SimSettings
from avito_harness.stack import Stack

EXE = str(Path(sys.executable).with_name("avito-harness"))
USER = 100000001
FREE_PORTS = SimSettings.from_env(avito_port=0, n8n_port=0, stt_port=0)  # never the default ports another test holds
FEATURE = """Feature: An incident recorded at Avito

  Background:
    Given the harness is running

  Scenario: Avito answers as it did in the incident, and its webhook arrives again
    Given the gateway is subscribed to Avito webhooks
    And Avito behaves as recorded in "{har}"
    When Avito delivers the recorded webhooks
    Then n8n receives the customer's message "из записи инцидента"
    When n8n sends "ответ по инциденту" through the gateway
    Then the gateway answers 400 with code "avito_bad_request"
"""


def _entry(kind: str, method: str, url: str, status: int, request: Any = None, answer: Any = None,
           offset: float = 0.0) -> dict[str, Any]:
    post = {"postData": {"mimeType": "application/json", "text": json.dumps(request, ensure_ascii=False)}} \
        if request is not None else {}
    return {"request": {"method": method, "url": url, "headers": [], **post},
            "response": {"status": status, "headers": [{"name": "Content-Type", "value": "application/json"}],
                         "content": {"mimeType": "application/json", "text": json.dumps(answer, ensure_ascii=False)}},
            "_avito_kind": kind, "_offset": offset}


def _incident(tmp_path: Path) -> Path:
    """What the recording proxy would have written: a customer's message delivered, a send Avito refused. The
    webhook is a real one of the fake Avito (for the chat the harness's scenarios use)."""
    with Stack.start(FREE_PORTS) as sim:
        account = sim.avito.account(USER)
        chat = next(c["id"] for c in account["chats"] if c["chat_type"] == "u2i")
        token = httpx.post(f"{sim.urls['avito']}/token", data={
            "grant_type": "client_credentials", "client_id": account["client_id"],
            "client_secret": account["client_secret"]}).json()["access_token"]
        sim.n8n.register("capture")
        hook = f"{sim.urls['n8n']}/webhook/capture"
        assert httpx.post(f"{sim.urls['avito']}/messenger/v3/webhook", json={"url": hook},
                          headers={"Authorization": f"Bearer {token}"}).status_code == 200
        sim.avito.customer_says(USER, chat, "из записи инцидента")
        body = next(r["body"] for r in sim.n8n.wait_for(1, path="capture") if r["body"].get("payload"))
    avito = "https://api.avito.ru"
    entries = [
        _entry("webhook", "POST", "http://127.0.0.1:8091/_webhook/0", 200, body, {"ok": True}, 1.0),
        _entry("avito", "POST", f"{avito}/messenger/v1/accounts/{USER}/chats/{chat}/messages", 400,
               {"message": {"text": "ответ по инциденту"}, "type": "text"},
               {"error": {"code": 400, "message": "message text is invalid"}}, 2.0),
    ]
    path = tmp_path / "incident.har"
    path.write_text(json.dumps({"log": {"version": "1.2", "creator": {"name": "test", "version": "1"},
                                        "entries": entries}}, ensure_ascii=False), encoding="utf-8")
    return path


def _run(tmp_path: Path, *gateway: str) -> subprocess.CompletedProcess[str]:
    features = tmp_path / "features"
    features.mkdir()
    (features / "incident.feature").write_text(FEATURE.format(har=_incident(tmp_path)), encoding="utf-8")
    return subprocess.run([EXE, "run", "--features", str(features), "--only-features", *gateway],
                          capture_output=True, text=True, timeout=240, cwd=tmp_path)


def test_our_gateway_is_judged_on_a_recorded_incident(tmp_path: Path) -> None:
    done = _run(tmp_path)
    assert done.returncode == 0, done.stdout[-3000:]
    assert "1 passed, 0 failed, 0 not judged of 1 selected" in done.stdout


def test_a_planted_defect_fails_on_the_recorded_incident_with_its_defect_named(tmp_path: Path) -> None:
    done = _run(tmp_path, "--gateway-double", "errors_not_spec_shape")
    assert done.returncode == 1, done.stdout[-3000:]
    # the recorded 400 reached it (served from the recording) and came back in the double's own shape
    assert "[fault: recorded #2: POST /messenger/v1/accounts/" in done.stdout
    assert "defect send_failed" in done.stdout and "SPEC's error form is" in done.stdout


def test_a_recording_becomes_a_scenario_file_that_sim_loads(tmp_path: Path) -> None:
    har = _incident(tmp_path)
    out = tmp_path / "incident.yaml"
    done = subprocess.run([EXE, "scenario", "from-recording", str(har), "--out", str(out)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    scenario = yaml.safe_load(out.read_text(encoding="utf-8"))
    validate_scenario(scenario)
    (rule,) = scenario["avito"]["faults"]
    assert rule["status"] == 400 and rule["route"].startswith("POST /messenger/v1/accounts/")
    assert [w["body"]["payload"]["value"]["content"]["text"] for w in scenario["avito"]["webhooks"]] == \
        ["из записи инцидента"]
    with Stack.start(FREE_PORTS, scenario=scenario) as sim:  # what `sim --scenario` does with it
        assert [r["route"] for r in sim.export_scenario()["avito"]["faults"]] == [rule["route"]]
    bad = tmp_path / "not.har"
    bad.write_text("{}", encoding="utf-8")
    refused = subprocess.run([EXE, "scenario", "from-recording", str(bad)], capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and "not a HAR recording" in refused.stdout


def test_the_record_and_replay_commands(tmp_path: Path) -> None:
    """``record`` as a user starts it (until SIGTERM): calls pass through and land in the file, the client
    secret and the token masked; ``replay --exit`` serves it and says what the recording did not cover."""
    import signal
    import time

    from avito_harness.stack.gateway_process import free_port
    from avito_harness.waiting import pause

    out, port = tmp_path / "session.har", free_port()
    with Stack.start(FREE_PORTS) as sim:
        account = sim.avito.account(USER)
        proc = subprocess.Popen([EXE, "record", "--out", str(out), "--upstream", sim.urls["avito"], "--port", str(port)],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            proxy = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 20
            while True:
                try:
                    token = httpx.post(f"{proxy}/token", data={
                        "grant_type": "client_credentials", "client_id": account["client_id"],
                        "client_secret": account["client_secret"]}).json()["access_token"]
                    break
                except httpx.HTTPError:
                    assert time.monotonic() < deadline, "the recording proxy did not start"
                    pause(0.2)
            chats = httpx.get(f"{proxy}/messenger/v2/accounts/{USER}/chats", headers={"Authorization": f"Bearer {token}"})
            assert chats.status_code == 200 and chats.json()["chats"]
        finally:
            proc.send_signal(signal.SIGTERM)
            printed = proc.communicate(timeout=20)[0]
    assert proc.returncode == 0 and "2 call(s) recorded" in printed, printed
    text = out.read_text(encoding="utf-8")
    assert account["client_secret"] not in text and token not in text and "***" in text
    replay = subprocess.run([EXE, "replay", str(out), "--avito-port", "0", "--exit"], capture_output=True, text=True,
                            timeout=60)
    assert replay.returncode == 0, replay.stdout + replay.stderr
    assert "1 answer(s), 0 webhook(s)" in replay.stdout and "not in the recording (0): none" in replay.stdout
