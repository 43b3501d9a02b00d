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
    proc = subprocess.Popen([str(EXE), "sim", "--avito-port", "0", "--n8n-port", "0", "--stt-port", "0", "--demo-port", "0",
                             "--gateway-port", "0", *args],
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
    proc, lines = _start("--no-gateway")
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
    proc, lines = _start("--scenario", str(scenario), "--no-gateway")
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
    proc, lines = _start("--no-gateway")
    try:
        port = re.search(r"fake Avito\s*│\s*http://127\.0\.0\.1:(\d+)", "".join(lines)).group(1)  # type: ignore[union-attr]
        result = subprocess.run([str(EXE), "sim", "--avito-port", port, "--n8n-port", "0", "--no-gateway"],
                                capture_output=True, text=True, timeout=30)
        assert result.returncode == 1 and "cannot listen" in result.stdout
    finally:
        _stop(proc)


def _url(lines: list[str], service: str) -> str:
    found = re.search(service + r"\s*│\s*(http://127\.0\.0\.1:\d+)", "".join(lines))
    assert found, "".join(lines)
    return found.group(1)


def test_sim_runs_the_full_loop_with_the_embedded_gateway() -> None:
    """A customer message injected through the control API ends as an answer in the chat and a history row."""
    proc, lines = _start("--gateway-port", "0", "--batch-window", "0.3")
    try:
        avito, n8n, gateway = _url(lines, "fake Avito"), _url(lines, "fake n8n"), _url(lines, "gateway")
        assert httpx.get(f"{gateway}/health").json()["status"] == "healthy"
        chat_id = httpx.get(f"{avito}/_sim/accounts/100000001").json()["chats"][0]["id"]
        httpx.post(f"{avito}/_sim/accounts/100000001/chats/{chat_id}/messages", json={"text": "Какая гарантия?"})
        sent = httpx.get(f"{n8n}/_sim/flows/wait", params={"kind": "sent", "timeout": 20}, timeout=30)
        assert sent.status_code == 200, sent.text
        (row,) = httpx.get(f"{n8n}/_sim/flows/history").json()["messages_history"]
        assert row["status"] == "sent" and "Гарантия" in row["text"]
        chat = httpx.get(f"{avito}/_sim/accounts/100000001/chats/{chat_id}").json()
        assert chat["messages"][-1]["content"]["text"] == row["text"]
        assert chat["messages"][-1]["id"] == row["external_message_id"]
    finally:
        assert _stop(proc) == 0


def test_demo_plays_the_scripted_conversation_to_the_end() -> None:
    result = subprocess.run([str(EXE), "demo", "--exit", "--demo-port", "0", "--batch-window", "0.3"],
                            capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stdout[-3000:]
    out = result.stdout
    assert out.count("answered in") == 4
    for hop in ("customer -> Avito", "Avito -> gateway", "gateway -> n8n", "n8n flows", "gateway -> Avito",
                "n8n -> STT"):
        assert hop in out, hop
    assert "-> 429" in out  # the rate-limit hit, then the recovery
    assert "demo page: http://127.0.0.1:" in out
