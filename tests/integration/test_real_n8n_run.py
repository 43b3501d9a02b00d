"""The acceptance run through n8n itself: BatteryCRM's workflows in n8n 2.8.4 over a real Postgres.

The same features pass with our workflows (every stage and the Avito errors, execution ids in the
transcripts); a user's exported workflows with a planted defect fail with the defect named. One real n8n at a
time (a lock across test workers): two would share two cores with the real-time checks.
"""

from __future__ import annotations

import fcntl
import json
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from avito_harness.paths import workflows_dir
from avito_harness.real.postgres import find_binaries
from tests.conftest import installed_n8n

EXE = str(Path(sys.executable).with_name("avito-harness"))
STAGES = {"1 webhook", "2 inbound", "3 outbound", "4 routing", "5 end to end", "Avito errors"}


@pytest.fixture
def one_n8n_at_a_time() -> Iterator[None]:
    installed_n8n()
    if find_binaries() is None:
        pytest.skip("no PostgreSQL server binaries here: apt-get install postgresql (.ci/run does)")
    with open(Path(tempfile.gettempdir()) / "avito-harness-real-n8n.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _run(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], list[dict[str, Any]]]:
    report = tmp_path / "run.json"
    done = subprocess.run([EXE, "run", "--n8n", "real", "--json", str(report), *args], capture_output=True, text=True,
                          timeout=400, cwd=tmp_path)
    return done, json.loads(report.read_text(encoding="utf-8"))["scenarios"] if report.exists() else []


@pytest.mark.usefixtures("one_n8n_at_a_time")
def test_every_stage_passes_through_real_n8n_with_execution_ids(tmp_path: Path) -> None:
    done, scenarios = _run(tmp_path)
    assert done.returncode == 0, done.stdout[-4000:]
    assert {s["stage"] for s in scenarios} == STAGES and all(s["outcome"] == "passed" for s in scenarios)
    assert "real n8n (started by the harness, workflows: ours)" in done.stdout
    assert "n8n executions" in done.stdout and "all success" in done.stdout and "failed: #" not in done.stdout
    e2e = [s for s in scenarios if s["stage"] in ("4 routing", "5 end to end")]
    for scenario in e2e:  # the workflows ran in n8n: each scenario names the executions it caused
        assert "n8n execution        #" in scenario["transcript"] and "BAT IN Avito: success" in scenario["transcript"]
    ai = next(s for s in scenarios if s["name"] == "The AI answers a new appeal")
    assert "BAT OUT Avito: success" in ai["transcript"]


PLANTED = {  # the variant, what to run, the defect every failure must name, what the report must say
    "bat-out-no-api-key": (("--stage", "2", "--stage", "5"), "workflow_send_refused", "gateway answered 401"),
    "bat-in-drops-voice": (("--scenario", "voice", "--scenario", "appeal"), "voice_not_transcribed",
                           "speech-to-text was never asked"),
}


@pytest.mark.usefixtures("one_n8n_at_a_time")
@pytest.mark.parametrize("variant", sorted(PLANTED))
def test_a_users_workflow_with_a_planted_defect_fails_naming_it(tmp_path: Path, variant: str) -> None:
    args, defect, words = PLANTED[variant]
    folder = workflows_dir() / "defects" / variant
    done, scenarios = _run(tmp_path, "--workflows", str(folder), "--workflows-map", str(folder / "mapping.yaml"), *args)
    assert done.returncode == 1, done.stdout[-4000:]
    failed = [s for s in scenarios if s["outcome"] == "failed"]
    assert failed and {s["defect"] for s in failed} == {defect}, [(s["name"], s["defect"], s["defects"][:2])
                                                                  for s in failed if s["defect"] != defect]
    assert f"defect {defect}" in done.stdout and words in done.stdout
    assert any(s["outcome"] == "passed" for s in scenarios)  # the rest of the user's workflows work in the harness


@pytest.mark.usefixtures("one_n8n_at_a_time")
def test_a_pre_rollout_export_is_judged_against_the_plan_in_one_run(tmp_path: Path) -> None:
    """A shop's workflows from before the rollout (Redis token cache, direct Avito calls, an interpolated INSERT, a
    missing sub-workflow, a 10 s schedule) run in n8n as written, and one run names every rollout item once."""
    folder = workflows_dir() / "examples" / "pre-rollout"
    done, scenarios = _run(tmp_path, "--workflows", str(folder), "--workflows-map", str(folder / "mapping.yaml"),
                           "--stage", "1")
    assert done.returncode == 1, done.stdout[-4000:]
    causes = done.stdout.split("Defects:", 1)[1].split("┏", 1)[0]
    for item in ("bypasses_gateway", "token_in_workflow", "wrong_api_version", "token_without_client_credentials",
                 "sql_interpolation", "history_row_wrong", "raw_payload_expected", "missing_subworkflow"):
        assert causes.count(f"defect {item}:") == 1, (item, causes)
    review = [s for s in scenarios if s["stage"] == "0 workflows"]
    assert len(review) == 7 and all(s["outcome"] == "failed" for s in review)
    assert "note workflow 'Appeal debouncer' runs on its own" in done.stdout


@pytest.mark.usefixtures("one_n8n_at_a_time")
def test_an_answer_pasted_into_the_sql_is_named_by_the_review_and_lost_at_run_time(tmp_path: Path) -> None:
    """BAT OUT writing messages_history with the answer pasted into its query: the review names the interpolation,
    and at run time an operator's answer with an apostrophe reaches the customer but never the CRM's history."""
    folder = workflows_dir() / "defects" / "bat-out-interpolates-sql"
    done, scenarios = _run(tmp_path, "--workflows", str(folder), "--workflows-map", str(folder / "mapping.yaml"),
                           "--scenario", "kept as written", "--scenario", "An operator answers instead")
    assert done.returncode == 1, done.stdout[-4000:]
    failed = {s["name"]: {d["code"] for d in s["defects"]} for s in scenarios if s["outcome"] == "failed"}
    assert failed == {"Queries take the message as a parameter, never as text": {"sql_interpolation"},
                      "An operator's answer with an apostrophe, quotes, a backslash, an emoji and a new line is kept "
                      "as written": {"history_row_wrong"}}, failed
    assert any(s["name"] == "An operator answers instead" and s["outcome"] == "passed" for s in scenarios)
