"""The verdict never lies: each planted mistake gives its exit code, its category and one clear line, and no
report calls passed what did not run.

The first case is the silent pass found by a new user: a workflow set real n8n cannot start used to end
"1 passed, 0 failed", exit 0, with JUnit tests="0". The others are the mistakes users make most (a feature
file that does not parse, a step or preset that does not exist, a gateway that is not there, a command that
is not found or exits, a name that selects nothing) and must never be blamed on their gateway.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from avito_harness.cli import main
from avito_harness.paths import workflows_dir
from avito_harness.stack.serve import serve_in_thread
from tests.conftest import installed_n8n
from tests.unit.test_run_report_schema import validate

EXE = str(Path(sys.executable).with_name("avito-harness"))
HOSTILE = Path(__file__).resolve().parents[1] / "doubles" / "hostile_gateway.py"


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A port nobody listens on: bound (so no one else takes it) but never listening."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield s.getsockname()[1]


def _feature(folder: Path, text: str) -> str:
    folder.mkdir(exist_ok=True)
    (folder / "mine.feature").write_text(text, encoding="utf-8")
    return str(folder)


def _empty(folder: Path) -> str:
    folder.mkdir()
    return str(folder)


def _scenario(*steps: str) -> str:
    return "Feature: a user's own scenarios\n  Scenario: mine\n" + "".join(f"    {s}\n" for s in steps)


@dataclass(frozen=True)
class Planted:
    args: Callable[[Path, int], list[str]]
    exit: int
    category: str
    words: str  # what the one line must say


PLANTED: dict[str, Planted] = {
    "a feature file that does not parse": Planted(
        lambda tmp, _: ["--only-features", "--features", _feature(tmp / "f", "Feature: x\n  Scenario: a\n    Given\n"
                                                                  "  Whatever this is\n    Then 42\n")],
        2, "feature_error", "mine.feature:"),
    "an empty features folder": Planted(
        lambda tmp, _: ["--features", _empty(tmp / "empty")],
        2, "feature_error", "no .feature file in this folder"),
    "an unknown step": Planted(
        lambda tmp, _: ["--only-features", "--features", _feature(tmp / "f", _scenario(
            "Given the harness is running", 'When the customer shouts "x"'))],
        2, "feature_error", 'did you mean "When the customer writes "{text}""'),
    "an unknown fault preset": Planted(
        lambda tmp, _: ["--only-features", "--features", _feature(tmp / "f", _scenario(
            "Given Avito answers every send with 503"))],
        2, "feature_error", '"503" is not a fault preset of the fake Avito: 429, answer_lost'),
    "a number spelt out": Planted(
        lambda tmp, _: ["--only-features", "--features", _feature(tmp / "f", _scenario(
            "Then n8n receives two normalized messages"))],
        2, "feature_error", '"two" is not a whole number'),
    "two scenarios with one name": Planted(
        lambda tmp, _: ["--only-features", "--features", _feature(tmp / "f", _scenario(
            "Given the harness is running") + "  Scenario: mine\n    Given the harness is running\n")],
        2, "feature_error", 'a second scenario named "mine"'),
    "a gateway URL nobody answers at": Planted(
        lambda _, port: ["--gateway-url", f"http://127.0.0.1:{port}"],
        2, "setup_error", "nothing answers at http://127.0.0.1:{port} (--gateway-url; is the gateway running?): "
                          "GET /health: ConnectError"),
    "a gateway command that exits": Planted(
        lambda _, __: ["--gateway-cmd", "sh -c 'echo cannot read my config; exit 3'"],
        2, "setup_error", "the gateway exited with code 3 before answering GET /health (any status, a JSON object "
                          'with "status"); its last output: cannot read my config'),
    "a gateway command that is not there": Planted(
        lambda _, __: ["--gateway-cmd", "no-such-cmd --port {port}"],
        2, "setup_error", "the gateway command's program 'no-such-cmd' was not found on PATH"),
    "a gateway that never answers /health": Planted(
        lambda _, __: ["--gateway-cmd", f"{sys.executable} -m http.server --bind 127.0.0.1 {{port}}",
                       "--start-timeout", "3"],
        2, "setup_error", 'within 3 s: probed GET /health (any status, a JSON object with "status") at'),
    "a gateway that accepts connections and never answers": Planted(
        lambda _, __: ["--gateway-cmd", f"{sys.executable} -c \"import socket, threading; s = socket.socket(); "
                       "s.bind(('127.0.0.1', {port})); s.listen(); threading.Event().wait(60)\"", "--start-timeout", "3"],
        2, "setup_error", "last probe: RequestDeadlineHit"),
    "an empty feature file": Planted(
        lambda tmp, _: ["--only-features", "--features", _feature(tmp / "f", "# only a comment\n")],
        2, "feature_error", "mine.feature:1: the file holds no Feature"),
    "a scenario without steps": Planted(
        lambda tmp, _: ["--only-features", "--features", _feature(tmp / "f", "Feature: x\n  Scenario: nothing in it\n")],
        2, "feature_error", 'the scenario "nothing in it" has no steps'),
    "a status Avito never uses for an expired token": Planted(
        lambda tmp, _: ["--only-features", "--features", _feature(tmp / "f", _scenario(
            "Given Avito answers expired tokens with 999"))],
        2, "feature_error", '"999" is not the status Avito answers an expired token with: 401, 403'),
    "time running backwards": Planted(
        lambda tmp, _: ["--only-features", "--features", _feature(tmp / "f", _scenario("When -5 seconds pass"))],
        2, "feature_error", '"-5" is not a whole number, 0 or more'),
    "a message written with nothing subscribed": Planted(
        lambda tmp, _: ["--only-features", "--features", _feature(tmp / "f", _scenario(
            "Given the harness is running", 'When the customer writes "hello"', "Then n8n receives 1 normalized message"))],
        2, "feature_error", "no webhook URL is subscribed at Avito"),
    "more messages expected than written": Planted(
        lambda tmp, _: ["--only-features", "--features", _feature(tmp / "f", _scenario(
            "Given the harness is running", "And the gateway is subscribed to Avito webhooks",
            'When the customer writes "hello"', "Then n8n receives 2 normalized messages"))],
        2, "feature_error", "the scenario expects 2 message(s) at n8n, but the customer wrote 1 in it"),
    "a gateway command with an unclosed quote": Planted(
        lambda _, __: ["--gateway-cmd", "sh -c 'unterminated"], 2, "usage_error", "--gateway-cmd cannot be split"),
    "an empty scenario name": Planted(lambda _, __: ["--scenario", ""], 2, "usage_error", "--scenario needs a name"),
    "a feature file where a folder is asked for": Planted(
        lambda tmp, _: ["--features", str(Path(_feature(tmp / "f", _scenario("Given the harness is running")))
                                          / "mine.feature")],
        2, "usage_error", "a file; give the folder that holds it"),
    "a report path that is a folder": Planted(
        lambda tmp, _: ["--stage", "1", "--html", str(tmp)], 2, "usage_error", "--html"),
    "a gateway that refuses the run's key": Planted(
        lambda _, __: ["--gateway-cmd", f"env API_KEY=some-other-key {sys.executable} -m avito_gateway", "--stage", "1"],
        2, "usage_error", "the gateway refuses the API key of the run (GET /api/chats answered 401"),
    "fakes that are not fakes": Planted(
        lambda _, port: ["--stack-url", f"avito=http://127.0.0.1:{port},n8n=http://127.0.0.1:{port},"
                                        f"stt=http://127.0.0.1:{port}", "--gateway-url", "http://127.0.0.1:9"],
        2, "setup_error", "nothing answers at http://127.0.0.1:9"),
    "a name that selects nothing": Planted(
        lambda _, __: ["--scenario", "a send whose answer got lost"],
        2, "usage_error", "--scenario 'a send whose answer got lost' matches no scenario; nearest: "
                          "'A send whose answer was lost is not posted twice'"),
    "both a URL and a command": Planted(
        lambda _, port: ["--gateway-url", f"http://127.0.0.1:{port}", "--gateway-cmd", "x"],
        2, "usage_error", "give one of --gateway-url, --gateway-cmd and --gateway-app"),
    "an n8n URL nobody answers at": Planted(
        lambda _, port: ["--n8n", "real", "--n8n-url", f"http://127.0.0.1:{port}",
                         "--postgres-url", f"postgresql://postgres@127.0.0.1:{port}/crm"],
        2, "pipeline_error", "nothing answers at http://127.0.0.1:{port} (--n8n-url; is n8n running?)"),
}


async def _health_only(scope: Any, receive: Any, send: Any) -> None:
    """Something that answers /health as SPEC says and nothing else (404)."""
    if scope["type"] != "http":
        return
    found = scope["path"] == "/health"
    await send({"type": "http.response.start", "status": 200 if found else 404,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": b'{"status": "healthy"}' if found else b"{}"})


async def _plain(scope: Any, receive: Any, send: Any) -> None:
    """A plain web server: 404 text for everything."""
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 404, "headers": [(b"content-type", b"text/html")]})
    await send({"type": "http.response.body", "body": b"<h1>Not Found</h1>"})


def test_a_fakes_port_that_is_taken_is_a_setup_error_naming_it(tmp_path: Path, closed_port: int,
                                                              monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    """--gateway-url runs the fakes on the ports the gateway was configured with: one that is taken is named."""
    monkeypatch.setenv("SIM_AVITO_PORT", str(closed_port))
    served = serve_in_thread(_health_only, name="health-only")
    try:
        code = main(["run", "--gateway-url", served.url])
    finally:
        served.stop()
    out = capsys.readouterr().out.replace("\n", " ")
    assert code == 2 and "[setup_error]: the fakes could not start: avito: cannot listen on" in out, out[-2000:]
    assert f"127.0.0.1:{closed_port}" in out and "stop `avito-harness sim`" in out


def test_a_url_that_is_not_a_gateway_is_not_judged(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A plain web server (or one of the fakes) at --gateway-url is a wrong URL, not a gateway full of defects."""
    served = serve_in_thread(_plain, name="not-a-gateway")
    try:
        code = main(["run", "--gateway-url", served.url])
    finally:
        served.stop()
    out = capsys.readouterr().out.replace("\n", " ")
    assert code == 2 and f"[setup_error]: what answers at {served.url} is not it" in out, out[-2000:]
    assert 'not a JSON object with "status"' in out


def _reports(tmp_path: Path) -> tuple[Path, Path]:
    return tmp_path / "run.json", tmp_path / "run.xml"


def _check_reports(json_path: Path, junit_path: Path, category: str, words: str) -> None:
    report = json.loads(json_path.read_text(encoding="utf-8"))
    validate(report)  # contracts/run-report.schema.json holds for a run that could not judge too
    assert report["verdict"]["category"] == category and words in report["verdict"]["reason"], report["verdict"]
    assert not [s for s in report["scenarios"] if s["outcome"] == "passed"], "a report says passed for what did not run"
    suite = ET.parse(junit_path).getroot().find("testsuite")
    assert suite is not None and int(suite.get("tests", "0")) >= 1
    cases = suite.findall("testcase")
    assert all(list(case) for case in cases), "a JUnit test case with no failure or error: a pass that did not run"
    assert any(e.get("type") == category for case in cases for e in case.findall("error"))


@pytest.mark.parametrize("mistake", list(PLANTED))
def test_a_planted_mistake_is_named_in_one_line_and_never_passes(mistake: str, tmp_path: Path, closed_port: int,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    planted = PLANTED[mistake]
    json_path, junit_path = _reports(tmp_path)
    code = main(["run", *planted.args(tmp_path, closed_port), "--json", str(json_path), "--junit", str(junit_path)])
    out = capsys.readouterr().out
    words = planted.words.replace("{port}", str(closed_port))
    verdict = [line for line in out.splitlines() if line.startswith(("verdict:", "error:"))]
    assert code == planted.exit, out[-2000:]
    assert verdict and f"[{planted.category}]" in " ".join(verdict), out[-2000:]
    assert words in out.replace("\n", " "), out[-2000:]
    assert "passed (exit 0)" not in out
    if json_path.exists():  # a usage error found before anything starts writes no report
        _check_reports(json_path, junit_path, planted.category, words)


def _typo_workflows(folder: Path) -> Path:
    folder.mkdir()
    for source in workflows_dir().glob("*.json"):
        workflow = json.loads(source.read_text(encoding="utf-8"))
        for node in workflow["nodes"]:
            if node["type"] == "n8n-nodes-base.webhook":
                node["type"] = "n8n-nodes-base.webhookTypo"
        (folder / source.name).write_text(json.dumps(workflow), encoding="utf-8")
    return folder


def test_the_silent_pass_a_workflow_set_real_n8n_cannot_start_is_not_judged(tmp_path: Path) -> None:
    """The first bug of the judge: nothing ran, and the run said "1 passed", exit 0, JUnit tests="0"."""
    installed_n8n()
    json_path, junit_path = _reports(tmp_path)
    done = subprocess.run([EXE, "run", "--n8n", "real", "--workflows", str(_typo_workflows(tmp_path / "wf")),
                           "--json", str(json_path), "--junit", str(junit_path)],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 2, done.stdout[-3000:]
    assert "[pipeline_error]" in done.stdout and "n8n-nodes-base.webhookTypo" in done.stdout
    assert " passed" not in done.stdout.replace("0 passed", "")
    _check_reports(json_path, junit_path, "pipeline_error", "n8n-nodes-base.webhookTypo")
