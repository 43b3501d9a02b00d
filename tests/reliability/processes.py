"""Real processes for the partial-failure suite: a PostgreSQL server the test may stop, start and pause (on a Unix
socket of its own: nothing to collide with, no port to hand over), and gateway replicas started on port 0
that report the port they got, which the test may pause (SIGSTOP) and continue (SIGCONT)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg

from avito_harness.real.postgres import find_binaries
from avito_harness.stack import Stack
from tests.gateway.conftest import API_KEY, USER, wait_until

SECRET = "partial-failure-secret"
START_TIMEOUT = 30.0
LISTENING = re.compile(r"avito-gateway listening on (http://127\.0\.0\.1:\d+)")


@dataclass
class OwnPostgres:
    """A PostgreSQL cluster in a temporary directory, reached only through its Unix socket."""

    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="gwpg-")))
    user: str = "harness"

    def _run(self, *command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        wrapped = ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else list(command)
        done = subprocess.run(wrapped, capture_output=True, text=True, timeout=120)
        if check and done.returncode != 0:
            raise RuntimeError(f"{Path(command[0]).name}: {(done.stderr or done.stdout).strip()[-500:]}")
        return done

    def _bin(self, name: str) -> str:
        binaries = find_binaries()
        assert binaries is not None
        return str(binaries / name)

    def start(self) -> OwnPostgres:
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        cluster = self.root / "cluster"
        if not cluster.exists():
            self._run(self._bin("initdb"), "-D", str(cluster), "-U", self.user, "--auth=trust", "-E", "UTF8",
                      "--no-sync", "--no-instructions")
        options = f"-c listen_addresses='' -k {self.root} -c fsync=off -c full_page_writes=off"
        self._run(self._bin("pg_ctl"), "-D", str(cluster), "-o", options, "-l", str(self.root / "server.log"),
                  "-w", "-t", "60", "start")
        return self

    def stop(self) -> None:
        self._run(self._bin("pg_ctl"), "-D", str(self.root / "cluster"), "-m", "fast", "-w", "stop", check=False)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql:///{database}?host={self.root}&user={self.user}"

    def new_database(self, name: str) -> str:
        with psycopg.connect(self.url(), autocommit=True) as db:
            db.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def gateway_backends(self) -> list[int]:
        """The server processes serving the gateways' connections."""
        with psycopg.connect(self.url(), autocommit=True) as db:
            return [r[0] for r in db.execute("SELECT pid FROM pg_stat_activity WHERE application_name = 'avito-gateway'")]

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


@dataclass
class Replica:
    """``python -m avito_gateway`` on port 0 (it prints the address it listens on)."""

    env: dict[str, str]
    name: str
    proc: subprocess.Popen[str] | None = None
    url: str = ""
    output: list[str] = field(default_factory=list)

    def start(self) -> Replica:
        self.proc = subprocess.Popen([sys.executable, "-m", "avito_gateway"], env={**os.environ, **self.env},
                                     cwd=self.env["DATA_DIR"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True)
        found = threading.Event()

        def read() -> None:
            assert self.proc is not None and self.proc.stdout is not None
            for line in self.proc.stdout:
                self.output.append(line)
                del self.output[:-300]
                match = LISTENING.search(line)
                if match:
                    self.url = match.group(1)
                    found.set()

        threading.Thread(target=read, daemon=True).start()
        if not found.wait(START_TIMEOUT):
            self.stop()
            raise AssertionError(f"{self.name} never said where it listens: {''.join(self.output[-5:])}")
        wait_until(lambda: self._healthy(), START_TIMEOUT, f"{self.name} healthy")
        return self

    def _healthy(self) -> bool:
        try:
            return httpx.get(f"{self.url}/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def pause(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGCONT)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.kill(self.proc.pid, signal.SIGCONT)  # a paused process cannot act on SIGTERM
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


@contextmanager
def replica_set(sim: Stack, database_url: str, tmp_path: Path, count: int = 2, **env: str) -> Iterator[list[Replica]]:
    """``count`` gateways for the fake Avito's seeded account sharing ``database_url``."""
    replicas = []
    for n in range(1, count + 1):
        data = tmp_path / f"replica-{n}"
        data.mkdir()
        replicas.append(Replica({
            "API_KEY": API_KEY, "AVITO_CLIENT_ID": "sim-client-id", "AVITO_CLIENT_SECRET": "sim-client-secret",
            "AVITO_USER_ID": str(USER), "AVITO_API_BASE_URL": sim.urls["avito"],
            "N8N_WEBHOOK_URL": f"{sim.urls['n8n']}/webhook/avito", "SERVER_HOST": "127.0.0.1", "SERVER_PORT": "0",
            "DATA_DIR": str(data), "DATABASE_URL": database_url, "REPLICA_ID": f"replica-{n}",
            "WEBHOOK_SECRET": SECRET, "OUTBOX_POLL_INTERVAL": "0.05", "RETRY_MIN_WAIT": "0.2", "RETRY_MAX_WAIT": "1",
            "RATE_LIMIT_REQUESTS": "100000", **env}, f"replica-{n}"))
    try:
        for replica in replicas:
            replica.start()
        yield replicas
    finally:
        for replica in replicas:
            replica.stop()
