"""``avito-gateway`` as a deployed process, configured only by environment, in front of the fakes."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest

from avito_harness.fakes.settings import DEMO_USER_ID
from avito_harness.stack.local import Stack

USER = DEMO_USER_ID


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.mark.parametrize("command", [["avito-gateway"], ["-m", "avito_gateway"]])
def test_deployed_gateway_serves_the_spec_endpoints(sim: Stack, tmp_path: Path, command: list[str]) -> None:
    port = _free_port()
    env = {**os.environ, "API_KEY": "test-api-key", "AVITO_CLIENT_ID": "sim-client-id",
           "AVITO_CLIENT_SECRET": "sim-client-secret", "AVITO_USER_ID": str(USER),
           "AVITO_API_BASE_URL": sim.urls["avito"], "N8N_WEBHOOK_URL": f"{sim.urls['n8n']}/webhook/avito",
           "SERVER_PORT": str(port), "DATA_DIR": str(tmp_path / "data")}
    exe = [str(Path(sys.executable).with_name(command[0]))] if command[0] != "-m" else [sys.executable, *command]
    proc = subprocess.Popen(exe, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    ready = threading.Event()
    lines: list[str] = []

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if "Uvicorn running" in line or "Application startup complete" in line:
                ready.set()

    threading.Thread(target=read, daemon=True).start()
    try:
        assert ready.wait(20), "".join(lines)
        base = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{base}/health").json()["status"] == "healthy"
        assert httpx.get(f"{base}/info").json()["avito_user_id"] == USER
        api = httpx.Client(base_url=base, headers={"X-API-Key": "test-api-key"})
        assert api.get("/api/token").json()["token"]["obtained"] is True
        chat_id = api.get("/api/chats").json()["chats"][0]["id"]
        assert api.post("/api/messages/send", json={"chat_id": chat_id, "text": "из процесса"}).json()["success"]
        assert api.post("/api/webhook/subscribe", json={"url": f"{base}/webhook/avito"}).json()["success"]
        sim.avito.customer_says(USER, chat_id, "клиент пишет")
        assert sim.n8n.wait_for(1, timeout=10)[0]["body"]["text"] == "клиент пишет"
        assert (tmp_path / "data" / "gateway.sqlite3").exists()
    finally:
        proc.terminate()
        proc.wait(10)
