"""Run a gateway as a separate process (our ``python -m avito_gateway`` by default) wired to the fakes.

The simulator never imports the gateway: it starts it by command, configures it by environment (the
deployment's own variable names) and talks to it over HTTP, exactly as it would to a gateway from another
code base. A gateway from elsewhere may misbehave, so the start is bounded and says what it probed, the
gateway runs in its own process group (a wrapper script's children stop with it), its output is always read
(decoded with replacement, lines capped: a full pipe would block it) and the data folder the harness made
for it is removed when it stops.
"""

from __future__ import annotations

import codecs
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx

from avito_harness.fakes.settings import DEMO_API_KEY, WEBHOOK_PATH
from avito_harness.judge.bounded_http import HEALTH_ANSWER_BYTES, Bounds, bounded_client
from avito_harness.judge.safe_text import visible_line
from avito_harness.waiting import pause, wait_until

__all__ = ["GatewayProcess", "GatewayProcessError", "collect_output", "free_port", "last_lines", "stop_process"]

START_TIMEOUT = 30.0
#: A line of a child's output longer than this is cut (a child printing without newlines stays bounded).
LINE_LIMIT = 2000
HEALTH_PROBE = 'GET /health (any status, a JSON object with "status")'


class GatewayProcessError(RuntimeError):
    """The gateway could not be started: one line that says what was tried and what happened."""


def collect_output(proc: subprocess.Popen[bytes], into: list[str], keep: int = 200) -> threading.Thread:
    """Keep the last ``keep`` lines a child prints, read until it closes its output on a daemon thread (a full
    pipe would block the child). Bytes that are not UTF-8 are replaced, never fatal; overlong lines are cut."""
    stream: IO[bytes] | None = proc.stdout
    assert stream is not None
    fd = stream.fileno()

    def read() -> None:
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        pending = ""
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                chunk = b""
            pending += decoder.decode(chunk, final=not chunk)
            *lines, pending = pending.split("\n")
            if len(pending) > LINE_LIMIT:
                lines.append(pending[:LINE_LIMIT] + " …(cut)")
                pending = ""
            for line in lines:
                into.append((line[:LINE_LIMIT] + " …(cut)" if len(line) > LINE_LIMIT else line) + "\n")
            del into[:-keep]
            if not chunk:
                if pending:
                    into.append(pending + "\n")
                    del into[:-keep]
                return

    thread = threading.Thread(target=read, daemon=True, name=f"output-{proc.pid}")
    thread.start()
    return thread


def last_lines(output: list[str], n: int = 5) -> str:
    """The last ``n`` lines a child printed, as one safe line (control characters shown as escapes)."""
    lines = [line.rstrip("\n") for line in output[-n:] if line.strip()]
    return visible_line(" | ".join(lines), 800) if lines else "(no output)"


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)  # the child leads its own group (start_new_session): its children go with it
    except (ProcessLookupError, PermissionError):
        pass


def stop_process(proc: subprocess.Popen[bytes] | None, grace: float = 10) -> None:
    """SIGTERM to the process group, ``grace`` seconds to shut down, then SIGKILL to what is left of it."""
    if proc is None:
        return
    group = proc.poll() is None or _group_alive(proc.pid)
    if not group:
        return
    _signal_group(proc, signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        pass
    _signal_group(proc, signal.SIGKILL)  # whatever the wrapper left behind
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:  # pragma: no cover - a process that survives SIGKILL
        pass


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _listeners(port: int) -> set[int]:
    """The processes listening on ``port`` (Linux's /proc): a gateway that left its process group (``setsid``, a
    daemon whose parent exits) is still found by the port the harness gave it."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if len(fields) > 9 and fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(f"socket:[{fields[9]}]")
    pids: set[int] = set()
    if not inodes:
        return pids
    for fds in Path("/proc").glob("[0-9]*/fd"):
        try:
            if any(os.readlink(fd) in inodes for fd in fds.iterdir()):
                pids.add(int(fds.parent.name))
        except OSError:
            continue
    return pids - {os.getpid()}


def _stop_listeners(port: int) -> None:
    for pid in _listeners(port):
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                break
            if wait_until(lambda pid=pid: not Path(f"/proc/{pid}").exists(), 3, interval=0.05):  # type: ignore[misc]
                break


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def _resolve(command: list[str]) -> list[str]:
    """The command with its program found; :class:`GatewayProcessError` names a program that is not there."""
    if not command or not command[0]:
        raise GatewayProcessError("the gateway command is empty")
    program = command[0]
    if os.sep in program:
        path = os.path.abspath(program)
        if os.path.isdir(path):
            raise GatewayProcessError(f"the gateway command's program {program!r} is a folder, not a program")
        if not os.path.isfile(path):
            raise GatewayProcessError(f"the gateway command's program {program!r} does not exist")
        if not os.access(path, os.X_OK):
            raise GatewayProcessError(f"the gateway command's program {program!r} is not executable (chmod +x?)")
        return [path, *command[1:]]
    if shutil.which(program) is None:
        raise GatewayProcessError(f"the gateway command's program {program!r} was not found on PATH")
    return command


@dataclass
class GatewayProcess:
    avito_url: str
    n8n_webhook_url: str
    client_id: str
    client_secret: str
    user_id: int
    api_key: str = DEMO_API_KEY
    host: str = "127.0.0.1"
    port: int = 0  # 0: a free one (a port a child must be told cannot be bound for it; taken ports are retried)
    #: the program and its arguments; "{port}" in an argument is replaced by the port (a new one on a retry)
    command: Sequence[str] = field(default_factory=lambda: (sys.executable, "-m", "avito_gateway"))
    data_dir: str | None = None  # None: a fresh temporary directory, removed when the process stops
    extra_env: dict[str, str] = field(default_factory=dict)
    #: False: started once it answers /health at all (a gateway Avito refuses a token says unhealthy, and the
    #: acceptance run is there to say why)
    require_healthy: bool = True
    start_timeout: float = START_TIMEOUT
    proc: subprocess.Popen[bytes] | None = None
    output: list[str] = field(default_factory=list)
    _owned_dir: str | None = None

    @classmethod
    def wired_to(cls, stack: Any, **options: Any) -> GatewayProcess:
        """A gateway configured for ``stack``'s fakes and demo account (the one place that wires one)."""
        s = stack.settings
        return cls(avito_url=stack.urls["avito"], n8n_webhook_url=stack.n8n_webhook_url, client_id=s.avito_client_id,
                   client_secret=s.avito_client_secret, user_id=s.avito_user_id, **options)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def describe_exit(self) -> str | None:
        """How the process ended ("exited with code 1", "was killed by SIGSEGV"), or None while it runs."""
        code = self.proc.poll() if self.proc is not None else None
        if code is None:
            return None
        if code < 0:
            try:
                return f"was killed by {signal.Signals(-code).name}"
            except ValueError:
                return f"was killed by signal {-code}"
        return f"exited with code {code}"

    def start(self) -> None:
        """Start and wait until it answers ``GET /health``; :class:`GatewayProcessError` says what went wrong."""
        if self.port == 0:
            self.port = free_port(self.host)
        for attempt in range(3):
            try:
                self._start_once()
                return
            except _PortTaken:
                if attempt == 2 or not any("{port}" in part for part in self.command):
                    raise GatewayProcessError(f"the gateway could not listen on {self.host}:{self.port}: the port "
                                              "was taken (three tries)") from None
                self.port = free_port(self.host)

    def _start_once(self) -> None:
        command = _resolve([part.replace("{port}", str(self.port)) for part in self.command])
        if self.data_dir is None and self._owned_dir is None:
            self._owned_dir = tempfile.mkdtemp(prefix="avito-harness-gateway-")
        data_dir = self.data_dir or self._owned_dir
        assert data_dir is not None
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
            "PUBLIC_WEBHOOK_URL": f"{self.url}{WEBHOOK_PATH}",
            **self.extra_env,
        }
        self.output.clear()
        try:
            # the caller's folder: a relative path in the command means what it means in the caller's shell
            self.proc = subprocess.Popen(command, env=env, cwd=os.getcwd(), stdout=subprocess.PIPE,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        except OSError as exc:
            raise GatewayProcessError(f"the gateway command {command[0]!r} could not be started: {exc.strerror}") from None
        reader = collect_output(self.proc, self.output)
        self._wait_answering(reader)

    def _wait_answering(self, reader: threading.Thread) -> None:
        deadline = time.monotonic() + self.start_timeout
        last = "not probed yet"
        with bounded_client(Bounds(request_timeout=2.0, max_answer_bytes=HEALTH_ANSWER_BYTES)) as http:
            while True:
                if self.proc is not None and self.proc.poll() is not None:
                    reader.join(2)  # its last words
                    if any("address already in use" in line.lower() or "errno 98" in line.lower()
                           for line in self.output[-20:]):
                        raise _PortTaken()
                    ended = self.describe_exit()
                    self.stop()  # its group and its data folder go too
                    raise GatewayProcessError(f"the gateway {ended} before answering {HEALTH_PROBE}; "
                                              f"its last output: {last_lines(self.output)}")
                answered, last = self._probe(http)
                if answered:
                    return
                if time.monotonic() >= deadline:
                    self.stop()
                    healthy = "healthy (200, status)" if self.require_healthy else "answering"
                    raise GatewayProcessError(
                        f"the gateway was not {healthy} within {self.start_timeout:g} s: probed {HEALTH_PROBE} at "
                        f"{self.url}/health, last probe: {last}; its last output: {last_lines(self.output)}")
                pause(0.1)

    def _probe(self, http: httpx.Client) -> tuple[bool, str]:
        try:
            health = http.get(f"{self.url}/health")
        except httpx.HTTPError as exc:
            return False, visible_line(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__, 200)
        try:
            body = health.json()
        except ValueError:
            body = None
        # a /health in SPEC's form: not another server that took the port while this one failed to bind
        if isinstance(body, dict) and "status" in body and (health.status_code == 200 or not self.require_healthy):
            return True, f"{health.status_code}"
        return False, visible_line(f"answered {health.status_code} {health.headers.get('content-type', '')} "
                                   f"{health.text[:120]}", 200)

    def subscribe(self) -> None:
        """Subscribe the gateway's webhook URL at Avito, through the gateway."""
        response = httpx.post(f"{self.url}/api/webhook/subscribe", headers={"X-API-Key": self.api_key},
                              json={"url": f"{self.url}{WEBHOOK_PATH}"}, timeout=10)
        if response.status_code != 200:
            raise GatewayProcessError(f"webhook subscription failed: {response.text}")

    def kill(self) -> None:
        """SIGKILL: no shutdown of any kind (what a crash or an OOM kill does)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self) -> None:
        stop_process(self.proc)
        if self.proc is not None and self.port:
            _stop_listeners(self.port)  # what escaped the process group still holds the port: it goes too
        if self._owned_dir is not None:
            shutil.rmtree(self._owned_dir, ignore_errors=True)
            self._owned_dir = None


class _PortTaken(Exception):
    pass
