"""A gateway that attacks the judge: every wait is bounded and named, output is drained and shown safely, the
gateway's whole process group stops, one failure never poisons the next scenario, nothing is left behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from avito_harness.waiting import wait_until

EXE = str(Path(sys.executable).with_name("avito-harness"))
DOUBLES = Path(__file__).resolve().parents[1] / "doubles"
HOSTILE = f"{sys.executable} {DOUBLES / 'hostile_gateway.py'}"


def _run(tmp_path: Path, *args: str, timeout: float = 240) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    report = tmp_path / "run.json"
    tmp = tmp_path / "tmp"
    tmp.mkdir(exist_ok=True)
    done = subprocess.run([EXE, "run", "--json", str(report), *args], capture_output=True, text=True,
                          timeout=timeout, cwd=tmp_path, env={**os.environ, "TMPDIR": str(tmp)})
    return done, json.loads(report.read_text(encoding="utf-8")) if report.exists() else {}


def _failed(report: dict[str, Any]) -> dict[str, str]:
    return {s["name"]: s["defect"] for s in report["scenarios"] if s["outcome"] == "failed"}


def test_an_answer_trickling_one_byte_at_a_time_hits_the_request_deadline(tmp_path: Path) -> None:
    started = time.monotonic()
    done, report = _run(tmp_path, "--gateway-cmd", f"{HOSTILE} trickle --port {{port}}", "--request-timeout", "2",
                        "--scenario", "Monitoring endpoints answer")
    assert time.monotonic() - started < 60, "the deadline did not bound the answer"
    assert done.returncode == 1, done.stdout[-3000:]
    assert _failed(report) == {"Monitoring endpoints answer": "no_answer_in_time"}
    assert "no complete answer within the 2 s request deadline (--request-timeout)" in done.stdout


def test_a_100_mb_answer_is_read_up_to_the_cap(tmp_path: Path) -> None:
    done, report = _run(tmp_path, "--gateway-cmd", f"{HOSTILE} huge --port {{port}}",
                        "--scenario", "Monitoring endpoints answer")
    assert done.returncode == 1, done.stdout[-3000:]
    assert _failed(report) == {"Monitoring endpoints answer": "answer_too_large"}
    assert "the answer is larger than 10,485,760 bytes (--max-answer-bytes)" in done.stdout


def test_output_that_is_not_utf8_or_holds_escape_sequences_is_drained_and_shown_inert(tmp_path: Path) -> None:
    """The double prints bytes that are not UTF-8 and 70 KB before it serves (a reader that died would leave it
    blocked on a full pipe, and the gateway would be blamed for not answering), and answers with escapes."""
    done, report = _run(tmp_path, "--gateway-cmd", f"{HOSTILE} noisy --port {{port}}",
                        "--scenario", "A send arrives in the Avito chat with the documented answer")
    assert done.returncode == 1, done.stdout[-3000:]
    assert _failed(report) == {"A send arrives in the Avito chat with the documented answer": "send_failed"}
    assert "\x1b" not in done.stdout and "\x07" not in done.stdout, "an escape sequence reached the terminal"
    assert done.stdout.count("\\x1b[2J\\x1b[H43 passed, 0 failed") >= 2  # in the answer and the output: evidence, inert
    assert "starting \ufffd\ufffd\ufffd( not utf-8" in done.stdout  # the gateway's own words, undecodable bytes replaced
    assert "\x1b" not in json.dumps(report, ensure_ascii=False)


def test_an_announced_limit_of_a_billion_a_second_is_capped_and_not_judged(tmp_path: Path) -> None:
    started = time.monotonic()
    done, report = _run(tmp_path, "--gateway-cmd", f"{HOSTILE} huge_limit --port {{port}}",
                        "--scenario", "The gateway's own limit holds and opens again after its window, in real time")
    assert time.monotonic() - started < 60
    assert done.returncode == 2, done.stdout[-3000:]
    (scenario,) = report["scenarios"]
    assert scenario["outcome"] == "not_judged" and scenario["category"] == "not_judged"
    assert "announces 1,000,000,000 requests per 1 s; the harness spends at most 1,000 requests" in scenario["reason"]
    assert report["verdict"]["exit_code"] == 2


def test_a_gateway_started_through_a_wrapper_script_is_stopped_whole(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    wrapper = tmp_path / "wrapper.sh"
    wrapper.write_text(f"#!/bin/sh\n{HOSTILE} pid {pid_file} --port \"$1\" &\nwait\n", encoding="utf-8")
    wrapper.chmod(0o755)
    done, _ = _run(tmp_path, "--gateway-cmd", f"{wrapper} {{port}}", "--scenario", "Monitoring endpoints answer")
    assert done.returncode == 0, done.stdout[-3000:]
    child = int(pid_file.read_text())
    assert wait_until(lambda: not _alive(child), 5), "the wrapper's child outlived the run"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()


def test_a_failing_scenario_never_poisons_the_next_and_nothing_is_left_behind(tmp_path: Path) -> None:
    """A limiter that never reopens fails its own scenario and leaves its window full: the next scenarios must
    meet a fresh gateway, and the run must leave no folder of its own in the temporary directory."""
    double = f"{sys.executable} -m avito_doubles serve limiter_stuck --port {{port}}"
    done, report = _run(tmp_path, "--gateway-cmd", double, "--stage", "3", timeout=400)
    assert done.returncode == 1, done.stdout[-3000:]
    assert _failed(report) == {
        "The gateway's own limit holds and opens again after its window, in real time": "rate_limit_never_resets"}
    assert sum(1 for s in report["scenarios"] if s["outcome"] == "passed") >= 15
    assert [p.name for p in (tmp_path / "tmp").iterdir()] == []
