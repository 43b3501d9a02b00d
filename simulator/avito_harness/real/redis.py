"""A real Redis server for a gateway that keeps its state there: Debian's ``redis-server`` on a free loopback port.

The harness starts it (``run --redis``) the way it starts PostgreSQL: in a temporary folder, nothing persisted,
bound to 127.0.0.1 only, stopped and removed with the run; the gateway it starts gets ``REDIS_URL``. The
server is the distribution's maintained build (``apt-get install redis-server``; ``.ci/run`` does it).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from avito_harness.stack.gateway_process import collect_output, free_port, last_lines, stop_process
from avito_harness.waiting import wait_until

__all__ = ["RedisError", "RedisServer"]

START_TIMEOUT = 20.0


class RedisError(RuntimeError):
    """Redis is not installed here, or did not start."""


@dataclass
class RedisServer:
    port: int = 0
    folder: Path | None = None
    proc: subprocess.Popen[bytes] | None = None
    output: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RedisError("no Redis server here: install Debian's redis-server package (.ci/run does)")
        self.port = self.port or free_port()
        self.folder = Path(tempfile.mkdtemp(prefix="avito-harness-redis-"))
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--protected-mode", "yes", "--save", "",
             "--appendonly", "no", "--dir", str(self.folder), "--daemonize", "no"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        collect_output(self.proc, self.output)
        if not wait_until(self._answers, START_TIMEOUT, interval=0.05, what="Redis to answer PING"):
            self.stop()
            raise RedisError(f"redis-server did not answer PING within {START_TIMEOUT:g} s: {last_lines(self.output)}")
        return self

    def _answers(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RedisError(f"redis-server exited with code {self.proc.returncode}: {last_lines(self.output)}")
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as conn:
                conn.sendall(b"PING\r\n")
                return conn.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        stop_process(self.proc, grace=5)
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
