"""A real n8n process on loopback: workflows imported and published, started, ready when a webhook answers.

n8n's CLI import leaves a workflow inactive and changes made while n8n runs do not take effect, so the
order is: import (credentials, then every workflow in one call), publish, then start. ``/healthz`` answers 200
before webhooks register (and every path answers 200 "n8n is starting up" while it migrates), so readiness is
the named webhook path being registered (asked with a GET, which runs nothing). The task-runner broker gets its
own port (it defaults to n8n's); telemetry, version checks and personalization are off; the user folder is a
temporary dir.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import tempfile
import time as _perf
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from avito_harness.real.n8n.install import N8nInstall
from avito_harness.stack.gateway_process import collect_output, free_port, stop_process
from avito_harness.waiting import wait_until

__all__ = ["N8nServer", "N8nServerError"]

READY_TIMEOUT = 120.0


class N8nServerError(RuntimeError):
    pass


@dataclass
class N8nServer:
    install: N8nInstall
    workflows: Sequence[Path] = ()  # n8n workflow JSON files (one workflow or a list each)
    credentials: Path | None = None  # a JSON list of credentials with plain data (n8n encrypts them on import)
    ready_path: str | None = None  # a webhook path (POST) that must be registered before n8n counts as ready
    port: int = 0
    broker_port: int = 0
    home: Path | None = None
    env: dict[str, str] = field(default_factory=dict)
    ready_seconds: float | None = None  # start-to-ready, measured
    proc: subprocess.Popen[bytes] | None = None
    output: list[str] = field(default_factory=list)
    _owned_home: bool = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _env(self) -> dict[str, str]:
        assert self.home is not None
        return {**os.environ, "N8N_USER_FOLDER": str(self.home), "N8N_PORT": str(self.port),
                "N8N_LISTEN_ADDRESS": "127.0.0.1", "N8N_HOST": "127.0.0.1", "N8N_RUNNERS_BROKER_PORT": str(self.broker_port),
                "N8N_DIAGNOSTICS_ENABLED": "false", "N8N_VERSION_NOTIFICATIONS_ENABLED": "false",
                "N8N_PERSONALIZATION_ENABLED": "false", "N8N_HIRING_BANNER_ENABLED": "false",
                "WEBHOOK_URL": f"{self.url}/", "TMPDIR": str(self.home / "tmp"), **self.env}

    def _cli(self, *args: str) -> None:
        done = subprocess.run([str(self.install.executable), *args], env=self._env(), cwd=self.home,
                              capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            raise N8nServerError(f"n8n {args[0]} failed: {(done.stderr or done.stdout).strip()[-800:]}")

    def _publish(self, ids: list[str]) -> None:
        """What ``n8n publish:workflow --id=X`` writes (its repository's publishVersion: the workflow's current
        version becomes the active one), for every imported workflow in one transaction: the CLI takes one id per
        call and each call boots n8n for about 4 s."""
        with sqlite3.connect(self.home / ".n8n" / "database.sqlite" if self.home else ":memory:") as db:
            for workflow_id in ids:
                found = db.execute("SELECT w.versionId FROM workflow_entity w JOIN workflow_history h ON"
                                   " h.workflowId = w.id AND h.versionId = w.versionId WHERE w.id = ?",
                                   (workflow_id,)).fetchone()
                if found is None:
                    raise N8nServerError(f"workflow {workflow_id} was not imported (no current version)")
                db.execute("UPDATE workflow_entity SET active = 1, activeVersionId = ? WHERE id = ?",
                           (found[0], workflow_id))

    def start(self) -> N8nServer:
        if self.install.installed_version() != self.install.version:
            raise N8nServerError(f"n8n {self.install.version} is not installed: run `avito-harness n8n install`")
        if self.home is None:
            self.home, self._owned_home = Path(tempfile.mkdtemp(prefix="avito-harness-n8n-")), True
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "tmp").mkdir(exist_ok=True)  # n8n's own temporary files stay in its folder, removed with it
        self.port, self.broker_port = self.port or free_port(), self.broker_port or free_port()
        if self.credentials is not None:
            self._cli("import:credentials", f"--input={self.credentials}")
        if self.workflows:
            folder = self.home / "import"
            folder.mkdir(exist_ok=True)
            workflows = [w for p in self.workflows for w in _as_list(json.loads(p.read_text("utf-8")))]
            for n, workflow in enumerate(workflows):  # --separate takes one workflow per file
                (folder / f"{n:03d}.json").write_text(json.dumps(workflow), encoding="utf-8")
            self._cli("import:workflow", "--separate", f"--input={folder}")
            self._publish([str(w["id"]) for w in workflows])
        started = _perf.monotonic()
        self.proc = subprocess.Popen([str(self.install.executable), "start"], env=self._env(), cwd=self.home,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     start_new_session=True)
        collect_output(self.proc, self.output, keep=300)
        self._wait_ready()
        self.ready_seconds = _perf.monotonic() - started
        return self

    def _wait_ready(self) -> None:
        probe = f"{self.url}/webhook/{self.ready_path}" if self.ready_path else f"{self.url}/healthz/readiness"
        def ready() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise N8nServerError("n8n exited: " + "".join(self.output[-10:]).strip())
            try:
                return _ready(httpx.get(probe, timeout=5), webhook=self.ready_path is not None)
            except httpx.HTTPError:
                return False

        if wait_until(ready, READY_TIMEOUT, interval=0.25, what="n8n to be ready"):
            return
        self.stop()
        raise N8nServerError(f"n8n not ready within {READY_TIMEOUT:g} s ({probe}): " + "".join(self.output[-10:]))

    def stop(self) -> None:
        stop_process(self.proc, grace=30)
        if self._owned_home and self.home is not None:
            shutil.rmtree(self.home, ignore_errors=True)

    def __enter__(self) -> N8nServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


STARTING_UP = "n8n is starting up"  # the placeholder n8n 2.x serves on every path while it migrates


def _ready(answer: httpx.Response, *, webhook: bool) -> bool:
    """A GET of a webhook n8n registered for POST names the method ("not registered for GET"); an
    unregistered one says "is not registered". A GET runs nothing, where a probing POST would start the workflow.
    While its database migrates, n8n answers every path 200 "n8n is starting up" (seen 4 s after start on a
    loaded machine, with the webhook's POST still a 404): that, a 5xx or anything else is not ready yet."""
    if STARTING_UP in answer.text:
        return False
    if not webhook:
        return answer.status_code == 200
    return answer.is_success or "not registered for GET" in answer.text


def _as_list(doc: object) -> list[dict[str, object]]:
    items = doc if isinstance(doc, list) else [doc]
    return [w for w in items if isinstance(w, dict)]
