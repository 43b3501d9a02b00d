"""``avito-harness run`` as a user runs it: the report and the exit code (planted defects: test_defect_catalogue.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.unit.test_run_report_schema import validate

EXE = str(Path(sys.executable).with_name("avito-harness"))
ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([EXE, "run", *args], capture_output=True, text=True, timeout=240, cwd=ROOT)


def test_one_stage_runs_green_with_a_table_and_reports(tmp_path: Path) -> None:
    junit, report = tmp_path / "run.xml", tmp_path / "run.json"
    result = _run("--stage", "1", "--junit", str(junit), "--json", str(report), "--html", str(tmp_path / "run.html"))
    assert result.returncode == 0, result.stdout[-3000:]
    # every scenario of the feature file (none needs what the embedded gateway cannot do)
    selected = (ROOT / "features" / "01_webhook.feature").read_text(encoding="utf-8").count("  Scenario:")
    assert "1 webhook" in result.stdout and f"{selected} passed, 0 failed, 0 not judged of {selected} selected" in \
        result.stdout
    assert "verdict: passed (exit 0)" in result.stdout
    assert "2 inbound" not in result.stdout  # only the stage asked for
    doc = json.loads(report.read_text())
    validate(doc)
    scenarios = doc["scenarios"]
    assert doc["verdict"] == {"exit_code": 0, "status": "passed", "category": None, "reason": None}
    assert len(scenarios) == selected and all(s["outcome"] == "passed" for s in scenarios)
    assert any("Avito -> gateway" in s["transcript"] for s in scenarios)  # the conversation, hop by hop
    assert junit.read_text().count("<testcase") == selected
    assert (tmp_path / "run.html").read_text().count("<details") == selected


def test_the_avito_errors_are_a_stage_of_their_own_and_names_select_exactly() -> None:
    errors = _run("--stage", "errors")
    assert errors.returncode == 0, errors.stdout[-3000:]
    assert "Avito errors" in errors.stdout and "7 passed, 0 failed, 0 not judged of 7 selected" in errors.stdout
    one = _run("--scenario", "Avito answers a send with a server error")  # the name as the report prints it
    assert one.returncode == 0 and "1 passed, 0 failed, 0 not judged of 1 selected" in one.stdout, one.stdout[-2000:]


def test_a_fault_that_never_hit_its_request_fails_as_not_exercised(tmp_path: Path) -> None:
    """A scenario that plants a fault and passes without meeting it proved nothing: it fails, and says so."""
    features = tmp_path / "features"
    features.mkdir()
    (features / "mine.feature").write_text(
        "Feature: a user's own scenario\n"
        "  Scenario: The fault is planted on sends, and nothing is sent\n"
        "    Given the harness is running\n"
        "    And Avito answers the next send with 429 and Retry-After\n"
        "    Then /health says healthy\n", encoding="utf-8")
    report = tmp_path / "run.json"
    result = _run("--features", str(features), "--only-features", "--json", str(report))
    assert result.returncode == 1, result.stdout[-3000:]
    (scenario,) = json.loads(report.read_text())["scenarios"]
    assert (scenario["outcome"], scenario["defect"]) == ("failed", "not_exercised")
    assert scenario["stage"] == "a user's own scenario"  # a user's feature is reported under its own name
    assert "never hit its request" in result.stdout


def test_feature_options_that_cannot_work_are_refused(tmp_path: Path) -> None:
    missing = _run("--features", str(tmp_path / "nowhere"))
    assert missing.returncode == 2 and "no such directory" in missing.stdout
    alone = _run("--only-features")
    assert alone.returncode == 2 and "needs at least one --features" in alone.stdout


def test_real_n8n_options_that_cannot_work_are_refused(tmp_path: Path) -> None:
    light = _run("--workflows", str(tmp_path))
    assert light.returncode == 2 and "--workflows need(s) --n8n real" in light.stdout
    both = _run("--n8n", "real", "--n8n-url", "http://127.0.0.1:9", "--workflows", str(tmp_path))
    assert both.returncode == 2 and "a running n8n (--n8n-url) has its own" in both.stdout
    missing = subprocess.run([EXE, "run", "--n8n", "real"], capture_output=True, text=True, timeout=60, cwd=ROOT,
                             env={**os.environ, "AVITO_HARNESS_CACHE": str(tmp_path / "empty-cache")})
    assert missing.returncode == 2 and "run `avito-harness n8n install` first" in missing.stdout
