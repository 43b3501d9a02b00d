"""``avito-harness run`` as a user runs it: the report, the exit code, and planted defects caught at their stage."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

EXE = str(Path(sys.executable).with_name("avito-harness"))
ROOT = Path(__file__).resolve().parents[2]
DOUBLE = f"{sys.executable} {ROOT / 'tests' / 'doubles' / 'broken_gateway.py'}"


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([EXE, "run", *args], capture_output=True, text=True, timeout=240, cwd=ROOT)


def test_one_stage_runs_green_with_a_table_and_reports(tmp_path: Path) -> None:
    junit, report = tmp_path / "run.xml", tmp_path / "run.json"
    result = _run("--stage", "1", "--junit", str(junit), "--json", str(report), "--html", str(tmp_path / "run.html"))
    assert result.returncode == 0, result.stdout[-3000:]
    assert "1 webhook" in result.stdout and "3 passed, 0 failed" in result.stdout
    assert "2 inbound" not in result.stdout  # only the stage asked for
    scenarios = json.loads(report.read_text())
    assert len(scenarios) == 3 and all(s["outcome"] == "passed" for s in scenarios)
    assert any("Avito -> gateway" in s["transcript"] for s in scenarios)  # the conversation, hop by hop
    assert junit.read_text().count("<testcase") == 3
    assert (tmp_path / "run.html").read_text().count("<details") == 3


@pytest.mark.parametrize(("defect", "stage", "names"), [
    ("probe_400", "1", "Webhook URL answered 400 to the probe"),
    ("no_voice_url", "2", "voice_url"),
])
def test_a_planted_defect_fails_its_stage_naming_it(defect: str, stage: str, names: str) -> None:
    result = _run("--stage", stage, "--gateway-cmd", f"{DOUBLE} {defect} --port {{port}}")
    assert result.returncode == 1, result.stdout[-3000:]
    assert "FAILED" in result.stdout and names in result.stdout, result.stdout[-3000:]


def test_conflicting_gateway_options_are_refused() -> None:
    result = _run("--gateway-url", "http://127.0.0.1:9", "--gateway-cmd", "x")
    assert result.returncode == 2 and "not both" in result.stdout
