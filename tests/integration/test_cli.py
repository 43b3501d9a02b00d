"""``avito-harness sim`` as a user runs it: prints URLs and credentials, serves demo data, stops on Ctrl-C."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest

EXE = Path(sys.executable).with_name("avito-harness")


def _start(*args: str) -> tuple[subprocess.Popen[str], list[str]]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([str(EXE), "sim", "--avito-port", "0", "--n8n-port", "0", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    lines: list[str] = []
    ready = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if "Ctrl-C stops" in line:
                ready.set()

    threading.Thread(target=read, daemon=True).start()
    if not ready.wait(20):
        proc.kill()
        pytest.fail("avito-harness sim did not come up:\n" + "".join(lines))
    return proc, lines


def _stop(proc: subprocess.Popen[str], sig: int = signal.SIGINT) -> int:
    proc.send_signal(sig)
    return proc.wait(10)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_sim_prints_urls_and_credentials_serves_demo_data_and_stops_cleanly(sig: int) -> None:
    proc, lines = _start()
    try:
        text = "".join(lines)
        avito = re.search(r"fake Avito\s*│\s*(http://127\.0\.0\.1:\d+)", text)
        assert avito, text
        assert "sim-client-id" in text and "sim-client-secret" in text and "100000001" in text
        base = avito.group(1)
        token = httpx.post(f"{base}/token", data={"grant_type": "client_credentials", "client_id": "sim-client-id",
                                                   "client_secret": "sim-client-secret"}).json()["access_token"]
        chats = httpx.get(f"{base}/messenger/v2/accounts/100000001/chats", params={"chat_types": "u2i,u2u"},
                          headers={"Authorization": f"Bearer {token}"}).json()["chats"]
        assert len(chats) >= 4
        names = {u["name"] for c in chats for u in c["users"] if u["id"] != 100000001}
        assert all(re.fullmatch(r"[А-ЯЁ][а-яё]+", n) for n in names), names
    finally:
        code = _stop(proc, sig)
    assert code == 0
    assert "stopped." in "".join(lines)


def test_sim_loads_a_scenario_file(tmp_path: Path) -> None:
    scenario = tmp_path / "incident.yaml"
    scenario.write_text("avito:\n  faults:\n    - {preset: unavailable_503, route: 'POST /token', times: 1}\n")
    proc, lines = _start("--scenario", str(scenario))
    try:
        base = re.search(r"fake Avito\s*│\s*(http://127\.0\.0\.1:\d+)", "".join(lines)).group(1)  # type: ignore[union-attr]
        data = {"grant_type": "client_credentials", "client_id": "sim-client-id", "client_secret": "sim-client-secret"}
        assert httpx.post(f"{base}/token", data=data).status_code == 503
        assert httpx.post(f"{base}/token", data=data).status_code == 200
    finally:
        _stop(proc)


def test_bad_scenario_file_is_a_clear_error(tmp_path: Path) -> None:
    scenario = tmp_path / "bad.yaml"
    scenario.write_text("weather: sunny\n")
    result = subprocess.run([str(EXE), "sim", "--scenario", str(scenario)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and "unknown scenario key" in result.stdout


def test_busy_port_is_a_clear_error() -> None:
    proc, lines = _start()
    try:
        port = re.search(r"fake Avito\s*│\s*http://127\.0\.0\.1:(\d+)", "".join(lines)).group(1)  # type: ignore[union-attr]
        result = subprocess.run([str(EXE), "sim", "--avito-port", port, "--n8n-port", "0"],
                                capture_output=True, text=True, timeout=30)
        assert result.returncode == 1 and "cannot listen" in result.stdout
    finally:
        _stop(proc)
