"""The container topology without a Docker engine: each fake and the gateway as its own process, each fake on
its own frozen clock, the acceptance run driving them over HTTP (what docker-compose.test.yml's `acceptance` does)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from avito_harness.stack.gateway_process import free_port
from avito_harness.stack.serve import wait_until_up

BIN = Path(sys.executable).parent


def _wait(url: str) -> None:
    assert wait_until_up(url, timeout=20), f"{url} never answered"


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[dict[str, str]]:
    ports = {name: free_port() for name in ("avito", "n8n", "stt", "gateway")}
    url = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    base = {**os.environ, "SIM_CLOCK": "frozen", "SIM_SEED": "42"}
    specs = [
        (["avito-harness", "serve", "avito", "--port", str(ports["avito"])], {"SIM_PUBLIC_HOST": url["avito"]}),
        (["avito-harness", "serve", "n8n", "--port", str(ports["n8n"])],
         {"SIM_N8N_MODE": "record", "SIM_GATEWAY_URL": url["gateway"], "SIM_STT_URL": url["stt"]}),
        (["avito-harness", "serve", "stt", "--port", str(ports["stt"])], {}),
        (["avito-gateway"], {"API_KEY": "test-api-key", "AVITO_CLIENT_ID": "sim-client-id",
                             "AVITO_CLIENT_SECRET": "sim-client-secret", "AVITO_USER_ID": "100000001",
                             "AVITO_API_BASE_URL": url["avito"], "N8N_WEBHOOK_URL": f"{url['n8n']}/webhook/avito",
                             "SERVER_PORT": str(ports["gateway"]), "RATE_LIMIT_REQUESTS": "10000",
                             "DATA_DIR": str(tmp_path / "gateway")}),
    ]
    procs = [subprocess.Popen([str(BIN / cmd[0]), *cmd[1:]], env={**base, **env}, cwd=tmp_path,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for cmd, env in specs[:3]]
    try:
        for name in ("avito", "n8n", "stt"):
            _wait(f"{url[name]}/_sim/health")
        cmd, env = specs[3]
        procs.append(subprocess.Popen([str(BIN / cmd[0])], env={**base, **env}, cwd=tmp_path,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        _wait(f"{url['gateway']}/health")
        yield url
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(10)


def test_acceptance_run_drives_separate_fakes_over_http(processes: dict[str, str]) -> None:
    stack = ",".join(f"{name}={processes[name]}" for name in ("avito", "n8n", "stt"))
    result = subprocess.run(
        [str(BIN / "avito-harness"), "run", "--stage", "1", "--stage", "4", "--stage", "5",
         "--gateway-url", processes["gateway"], "--stack-url", stack],
        capture_output=True, text=True, timeout=240,
    )
    assert result.returncode == 0, result.stdout[-4000:]
    # one scenario needs to start the gateway itself (--gateway-cmd): not applicable to a running one, with the reason
    counts = re.search(r"(\d+) passed, 0 failed, 0 not judged of (\d+) selected", result.stdout)
    assert counts and counts[1] == counts[2] and int(counts[1]) >= 10, result.stdout[-2000:]
    assert "not applicable A gateway started without API_KEY does not serve the API" in result.stdout
    assert "run with --gateway-cmd" in result.stdout


def test_serve_refuses_a_taken_port(processes: dict[str, str]) -> None:
    port = processes["avito"].rsplit(":", 1)[1]
    result = subprocess.run([str(BIN / "avito-harness"), "serve", "avito", "--port", port],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 1 and "cannot listen" in result.stdout
