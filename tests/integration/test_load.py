"""``avito-harness load`` on Locust, short: our gateway for several shops ends judged with nothing lost,
duplicated or reordered (in one Locust process, and distributed: a master and two workers); a gateway that
forwards every message twice fails it, the duplicates counted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

EXE = str(Path(sys.executable).with_name("avito-harness"))


def _load(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], dict[str, object]]:
    report = tmp_path / "load.json"
    done = subprocess.run([EXE, "load", "--chats", "2", "--duration", "4", "--rate", "2", "--json", str(report), *args],
                          capture_output=True, text=True, timeout=240, cwd=tmp_path)
    return done, json.loads(report.read_text()) if report.exists() else {}


@pytest.mark.parametrize("workers", ["0", "2"])
def test_our_gateway_under_load_loses_nothing(tmp_path: Path, workers: str) -> None:
    done, summary = _load(tmp_path, "--shops", "4", "--workers", workers)
    assert done.returncode == 0, done.stdout[-3000:]
    assert summary["passed"] and summary["sent"] == summary["delivered"] and summary["sent"] > 0
    assert (summary["lost"], summary["duplicated"], summary["order_violations"]) == (0, 0, 0)
    assert summary["shops_loaded"] == 4 and summary["replies_sent"] > 0 and summary["replies_lost"] == 0
    assert set(summary["cpu_seconds"]) == {"gateway", "fakes", "locust"}


def test_a_gateway_that_forwards_twice_fails_the_load(tmp_path: Path) -> None:
    double = f"{sys.executable} -m avito_doubles serve twice_to_n8n --port {{port}}"
    done, summary = _load(tmp_path, "--shops", "2", "--gateway-cmd", double)
    assert done.returncode == 1, done.stdout[-3000:]
    assert summary["duplicated"] == summary["sent"] > 0 and "duplicated" in done.stdout


def test_three_replicas_on_one_postgres_lose_nothing(tmp_path: Path, postgres_url: str) -> None:
    """The deployment users ask about before a sale weekend: replicas sharing one PostgreSQL, each serving a share
    of the shops (its webhooks and its CRM's replies)."""
    done, summary = _load(tmp_path, "--shops", "6", "--replicas", "3", "--database-url", postgres_url)
    assert done.returncode == 0, done.stdout[-3000:]
    assert summary["passed"] and summary["sent"] == summary["delivered"] > 0 and summary["shops_loaded"] == 6
    assert (summary["lost"], summary["duplicated"], summary["order_violations"], summary["replies_lost"]) == (0, 0, 0, 0)


def test_replicas_without_a_shared_database_are_refused_in_one_line(tmp_path: Path) -> None:
    done, _ = _load(tmp_path, "--replicas", "2")
    assert done.returncode == 2 and "[usage_error]: --replicas share one database" in done.stdout
