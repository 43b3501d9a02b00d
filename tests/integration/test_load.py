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


def test_sharded_fakes_each_own_their_shops_and_share_nothing(tmp_path: Path) -> None:
    """--shards 3: three fake Avito + fake n8n pairs as processes; each holds only its shops' accounts, and what a
    shop's gateway forwards lands on that shop's shard only (the run still judges every message once, in order)."""
    done, summary = _load(tmp_path, "--shops", "6", "--shards", "3")
    assert done.returncode == 0, done.stdout[-3000:]
    shards = summary["shards"]
    assert isinstance(shards, list) and len(shards) == 3
    owned = [set(s["accounts"]) for s in shards]
    assert all(len(o) == 2 for o in owned) and len(set().union(*owned)) == 6  # disjoint: no account on two shards
    assert sum(s["at_n8n"] for s in shards) == summary["delivered"] and all(s["at_n8n"] > 0 for s in shards)
    assert len({s["avito"] for s in shards}) == 3 and summary["passed"]
    import httpx

    for url in [s[kind] for s in shards[1:] for kind in ("avito", "n8n")]:  # the shard processes are gone
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{url}/_sim/health", timeout=2)


def test_a_gateway_serving_a_thousand_shops_starts_under_the_harness(tmp_path: Path) -> None:
    """Ours lists every account in /health (about 70 bytes each): 1,000 shops are more than 64 KiB, which the
    harness once refused to read, so it judged the gateway never healthy."""
    import yaml

    from avito_harness.fakes.settings import SimSettings
    from avito_harness.stack.gateway_process import GatewayProcess
    from avito_harness.stack.local import Stack

    accounts = {"accounts": [{"name": f"shop{n}", "user_id": 300_000_001 + n, "client_id": f"c{n}",
                              "client_secret": f"s{n}", "api_keys": [f"key-{n}"]} for n in range(1000)]}
    (tmp_path / "accounts.yaml").write_text(yaml.safe_dump(accounts), encoding="utf-8")
    with Stack.start(SimSettings(avito_port=0, n8n_port=0, stt_port=0)) as stack:
        gateway = GatewayProcess.wired_to(stack, command=[sys.executable, "-m", "avito_gateway"],
                                          extra_env={"ACCOUNTS_FILE": str(tmp_path / "accounts.yaml")},
                                          require_healthy=False, data_dir=str(tmp_path / "gw"))
        gateway.start()
        try:
            import httpx

            assert len(httpx.get(f"{gateway.url}/health", timeout=10).content) > 65536
        finally:
            gateway.stop()
