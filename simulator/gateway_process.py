"""Run a gateway as a separate process (our ``python -m avito_gateway`` by default) wired to the fakes.

The simulator never imports the gateway: it starts it by command, configures
it by environment (the deployment's own variable names) and talks to it over
HTTP, exactly as it would to a gateway from another code base.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

import httpx

__all__ = ["GatewayProcess", "GatewayProcessError", "collect_output", "free_port", "stop_process"]

START_TIMEOUT = 30.0


class GatewayProcessError(RuntimeError):
    pass


def collect_output(proc: subprocess.Popen[str], into: list[str], keep: int = 200) -> None:
    """Keep the last ``keep`` lines a child prints, read on a daemon thread (a full pipe would block it)."""

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            into.append(line)
            del into[:-keep]

    threading.Thread(target=read, daemon=True).start()


def stop_process(proc: subprocess.Popen[str] | None, grace: float = 10) -> None:
    """SIGTERM, ``grace`` seconds to shut down, then SIGKILL."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class GatewayProcess:
    avito_url: str
    n8n_webhook_url: str
    client_id: str
    client_secret: str
    user_id: int
    api_key: str = "test-api-key"
    host: str = "127.0.0.1"
    port: int = 8765
    command: Sequence[str] = field(default_factory=lambda: (sys.executable, "-m", "avito_gateway"))
    data_dir: str | None = None  # None: a fresh temporary directory
    extra_env: dict[str, str] = field(default_factory=dict)
    #: False: started once it answers /health at all (a gateway Avito refuses a token says unhealthy, and the
    #: acceptance run is there to say why)
    require_healthy: bool = True
    proc: subprocess.Popen[str] | None = None
    output: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> None:
        data_dir = self.data_dir or tempfile.mkdtemp(prefix="avito-harness-gateway-")
        os.makedirs(data_dir, exist_ok=True)
        env = {
            **os.environ,
            "API_KEY": self.api_key,
            "AVITO_CLIENT_ID": self.client_id,
            "AVITO_CLIENT_SECRET": self.client_secret,
            "AVITO_USER_ID": str(self.user_id),
            "AVITO_API_BASE_URL": self.avito_url,
            "N8N_WEBHOOK_URL": self.n8n_webhook_url,
            "SERVER_HOST": self.host,
            "SERVER_PORT": str(self.port),
            "DATA_DIR": data_dir,
            "PUBLIC_WEBHOOK_URL": f"{self.url}/webhook/avito",
            **self.extra_env,
        }
        command = list(self.command)
        if os.sep in command[0]:  # the gateway runs in its data directory: a relative program path is the caller's
            command[0] = os.path.abspath(command[0])
        self.proc = subprocess.Popen(command, env=env, cwd=data_dir, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        collect_output(self.proc, self.output)
        waiter = threading.Event()
        for _ in range(int(START_TIMEOUT / 0.1)):
            if self.proc.poll() is not None:
                raise GatewayProcessError("gateway exited: " + "".join(self.output[-5:]).strip())
            try:
                health = httpx.get(f"{self.url}/health", timeout=1)
                # a /health in SPEC's form: not another server that took the port while this one failed to bind
                answered = isinstance(health.json(), dict) and "status" in health.json()
            except (httpx.HTTPError, ValueError):
                answered = False
            if answered and self.proc.poll() is None and (health.status_code == 200 or not self.require_healthy):
                return
            waiter.wait(0.1)
        self.stop()
        raise GatewayProcessError(f"gateway not {'healthy' if self.require_healthy else 'answering'} within {START_TIMEOUT:g} s: " + "".join(self.output[-5:]))

    def subscribe(self) -> None:
        """Subscribe the gateway's webhook URL at Avito, through the gateway."""
        response = httpx.post(f"{self.url}/api/webhook/subscribe", headers={"X-API-Key": self.api_key},
                              json={"url": f"{self.url}/webhook/avito"}, timeout=10)
        if response.status_code != 200:
            raise GatewayProcessError(f"webhook subscription failed: {response.text}")

    def kill(self) -> None:
        """SIGKILL: no shutdown of any kind (what a crash or an OOM kill does)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self) -> None:
        stop_process(self.proc)
