"""The customer's real pipeline for the harness: Postgres with the CRM tables, n8n with credentials and workflows.

``RealN8n(...).start(stt_url=..., gateway_api_key=..., relay_url=...)`` starts (or connects to) both and hands
the fake n8n a :class:`~avito_harness.fakes.n8n.upstream.RealFlows`. Our workflows (``workflows/`` in the checkout,
packaged as ``avito_harness.workflows``) find their services through credentials by name and the
``crm_settings`` table; a user's exported workflows (``--workflows DIR``) are imported with their credentials
and hosts mapped by a small file (see :mod:`avito_harness.real.n8n.mapping`).
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from avito_harness.paths import workflows_dir
from avito_harness.real.n8n.executions import ApiExecutions, Executions, SqliteExecutions
from avito_harness.real.n8n.install import N8nInstall
from avito_harness.real.n8n.mapping import (
    CREDENTIALS,
    MappingError,
    WorkflowMap,
    load_workflows,
    read_workflows,
)
from avito_harness.real.n8n.server import N8nServer
from avito_harness.real.n8n.validate import NodeCatalogue, workflow_problems
from avito_harness.real.postgres import PostgresServer

__all__ = ["RealN8n", "credentials", "start_behind"]

DEFAULT_WINDOW = 2.0  # real seconds: the batch window the acceptance run gives the real Universal Batcher


def credentials(*, postgres_url: str, gateway_api_key: str, stt_url: str, stt_api_key: str) -> list[dict[str, Any]]:
    """The three credentials our workflows name, as ``n8n import:credentials`` takes them (n8n encrypts them)."""
    pg = urlparse(postgres_url)
    return [
        {"id": CREDENTIALS["postgres"][0], "name": CREDENTIALS["postgres"][1], "type": "postgres",
         "data": {"host": pg.hostname or "127.0.0.1", "port": pg.port or 5432, "database": pg.path.lstrip("/"),
                  "user": pg.username or "postgres", "password": pg.password or "", "ssl": "disable",
                  "allowUnauthorizedCerts": False, "maxConnections": 20}},
        {"id": CREDENTIALS["gateway_api_key"][0], "name": CREDENTIALS["gateway_api_key"][1], "type": "httpHeaderAuth",
         "data": {"name": "X-API-Key", "value": gateway_api_key}},
        {"id": CREDENTIALS["speech_to_text"][0], "name": CREDENTIALS["speech_to_text"][1], "type": "openAiApi",
         "data": {"apiKey": stt_api_key, "url": f"{stt_url.rstrip('/')}/v1", "header": False}},
    ]


@dataclass
class RealN8n:
    install: N8nInstall | None = None  # None with n8n_url: a running n8n
    n8n_url: str | None = None
    n8n_api_key: str | None = None
    postgres_url: str | None = None  # None: the harness starts its own server
    workflows: Path | None = None  # None: ours
    workflow_map: WorkflowMap = field(default_factory=WorkflowMap)
    postgres: PostgresServer | None = None
    server: N8nServer | None = None
    executions: Executions | None = None
    _tmp: tempfile.TemporaryDirectory[str] | None = None

    @property
    def url(self) -> str:
        if self.server is not None:
            return self.server.url
        assert self.n8n_url
        return self.n8n_url.rstrip("/")

    @property
    def crm_url(self) -> str:
        if self.postgres is not None:
            return self.postgres.url
        assert self.postgres_url
        return self.postgres_url

    def start(self, *, stt_url: str, stt_api_key: str, gateway_api_key: str, relay_url: str) -> RealN8n:
        """``relay_url`` stands for the gateway in a user's workflows (the scenario's gateway changes; it does not)."""
        if self.postgres_url is None:
            self.postgres = PostgresServer()  # held before it starts: a failed start still removes its folder
            self.postgres.start()  # the tables: PostgresCrm applies the schema on connecting
        if self.n8n_url is not None:
            self.executions = ApiExecutions(self.n8n_url, self.n8n_api_key or "") if self.n8n_api_key else None
            return self
        assert self.install is not None
        self._tmp = tempfile.TemporaryDirectory(prefix="avito-harness-n8n-")
        folder = Path(self._tmp.name)
        creds = folder / "credentials.json"
        creds.write_text(json.dumps(credentials(postgres_url=self.crm_url, gateway_api_key=gateway_api_key,
                                                stt_url=stt_url, stt_api_key=stt_api_key)), encoding="utf-8")
        urls = {"gateway": relay_url, "speech_to_text": f"{stt_url.rstrip('/')}/v1"}
        files = load_workflows(self.workflows or workflows_dir(), self.workflow_map, urls=urls, into=folder / "workflows")
        problems = workflow_problems(read_workflows(folder / "workflows"), NodeCatalogue.from_install(self.install),
                                     allowed_hosts=set(urls.values()))
        if problems:
            raise MappingError("the workflows cannot run in n8n " + self.install.version + ":\n  " + "\n  ".join(problems))
        self.server = N8nServer(self.install, workflows=files, credentials=creds, ready_path=self.workflow_map.webhook,
                                home=folder / "home")
        self.server.start()
        self.executions = SqliteExecutions(folder / "home" / ".n8n" / "database.sqlite")
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
        if self.postgres is not None:
            self.postgres.stop()
        if self._tmp is not None:
            self._tmp.cleanup()


def start_behind(stack: Any, *, gateway_api_key: str, batch_window: float, n8n_url: str | None = None,
                 n8n_api_key: str | None = None, postgres_url: str | None = None, workflows: str | None = None,
                 workflows_map: str | None = None) -> RealN8n:
    """Start (or reach) the real pipeline and put it behind ``stack``'s fake n8n; the caller stops it.
    Raises :class:`N8nServerError`, :class:`~avito_harness.real.postgres.PostgresError` or :class:`MappingError`."""
    real = RealN8n(install=None if n8n_url else N8nInstall.default(), n8n_url=n8n_url, n8n_api_key=n8n_api_key,
                   postgres_url=postgres_url, workflows=Path(workflows) if workflows else None,
                   workflow_map=WorkflowMap.read(Path(workflows_map)) if workflows_map else WorkflowMap())
    try:
        real.start(stt_url=stack.urls["stt"], stt_api_key=stack.settings.stt_api_key, gateway_api_key=gateway_api_key,
                   relay_url=f"{stack.urls['n8n']}/_sim/flows/gateway")
        stack.use_real_n8n(real.crm_url, real.url, real.executions, batch_window=batch_window)
    except BaseException:
        real.stop()  # n8n and Postgres stop with the failure: nothing is left running
        raise
    return real
