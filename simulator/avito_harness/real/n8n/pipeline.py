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
    map_workflows,
    read_workflows,
    roles_used,
    write_workflows,
)
from avito_harness.real.n8n.rollout import AVITO_HOSTS, RolloutFinding, own_triggers, review, schema_findings
from avito_harness.real.n8n.server import N8nServer
from avito_harness.real.n8n.validate import NodeCatalogue, workflow_problems
from avito_harness.real.postgres import PostgresServer
from avito_harness.real.redis import RedisServer

__all__ = ["RealN8n", "credentials", "start_behind"]

DEFAULT_WINDOW = 2.0  # real seconds: the batch window the acceptance run gives the real Universal Batcher


def credentials(*, postgres_url: str, gateway_api_key: str, stt_url: str, stt_api_key: str,
                redis_port: int | None = None) -> list[dict[str, Any]]:
    """The credentials our workflows name (and Redis's, when a user's workflows use it), as ``n8n
    import:credentials`` takes them (n8n encrypts them)."""
    pg = urlparse(postgres_url)
    redis = [{"id": CREDENTIALS["redis"][0], "name": CREDENTIALS["redis"][1], "type": "redis",
              "data": {"host": "127.0.0.1", "port": redis_port, "database": 0, "password": "", "ssl": False}}]
    return [*(redis if redis_port else []),
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
    crm_schema: Path | None = None  # the shop's SQL, applied before ours (which only adds what it lacks)
    postgres: PostgresServer | None = None
    redis: RedisServer | None = None
    server: N8nServer | None = None
    #: a user's workflows against the rollout plan (None: ours, which are not reviewed)
    rollout: list[RolloutFinding] | None = None
    triggers: list[str] = field(default_factory=list)  # the workflows that run on their own
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

    def start(self, *, stt_url: str, stt_api_key: str, gateway_api_key: str, relay_url: str,
              avito_url: str = "") -> RealN8n:
        """``relay_url`` stands for the gateway in a user's workflows (the scenario's gateway changes; it does not);
        ``avito_url``: the fake Avito, for the calls a user's workflows still make to Avito itself."""
        if self.postgres_url is None:
            self.postgres = PostgresServer()  # held before it starts: a failed start still removes its folder
            self.postgres.start()  # the tables: PostgresCrm applies the schema on connecting
            if self.crm_schema is not None:
                self.postgres.apply_sql(self.crm_schema.read_text(encoding="utf-8"), what=f"--crm-schema {self.crm_schema}")
        if self.n8n_url is not None:
            self.executions = ApiExecutions(self.n8n_url, self.n8n_api_key or "") if self.n8n_api_key else None
            return self
        assert self.install is not None
        self._tmp = tempfile.TemporaryDirectory(prefix="avito-harness-n8n-")
        folder = Path(self._tmp.name)
        originals = read_workflows(self.workflows or workflows_dir())
        if self.workflows is not None:
            self.rollout = review(originals, avito_hosts=AVITO_HOSTS | self.workflow_map.avito_hosts())
            if self.crm_schema is not None and self.postgres is not None:
                self.rollout += schema_findings(self.postgres.columns("messages_history"))
            self.triggers = own_triggers(originals)
        urls = {"gateway": relay_url, "speech_to_text": f"{stt_url.rstrip('/')}/v1", "avito": avito_url,
                "recorder": f"{relay_url.rsplit('/_sim/', 1)[0]}/_recorder"}
        mapped = map_workflows(originals, self.workflow_map, urls=urls)  # every problem found before anything runs
        problems = workflow_problems([(Path(f"{w.get('name')}.json"), w) for w in mapped],
                                     NodeCatalogue.from_install(self.install), allowed_hosts=set(urls.values()))
        if problems:
            raise MappingError("the workflows cannot run in n8n " + self.install.version + ":\n  " + "\n  ".join(problems))
        if "redis" in roles_used(originals, self.workflow_map):
            self.redis = RedisServer()
            self.redis.start()
        files = write_workflows(mapped, folder / "workflows")
        creds = folder / "credentials.json"
        creds.write_text(json.dumps(credentials(postgres_url=self.crm_url, gateway_api_key=gateway_api_key,
                                                stt_url=stt_url, stt_api_key=stt_api_key,
                                                redis_port=self.redis.port if self.redis else None)), encoding="utf-8")
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
        if self.redis is not None:
            self.redis.stop()
        if self._tmp is not None:
            self._tmp.cleanup()


def start_behind(stack: Any, *, gateway_api_key: str, batch_window: float, n8n_url: str | None = None,
                 n8n_api_key: str | None = None, postgres_url: str | None = None, workflows: str | None = None,
                 workflows_map: str | None = None, crm_schema: str | None = None) -> RealN8n:
    """Start (or reach) the real pipeline and put it behind ``stack``'s fake n8n; the caller stops it.
    Raises :class:`N8nServerError`, :class:`~avito_harness.real.postgres.PostgresError` or :class:`MappingError`."""
    real = RealN8n(install=None if n8n_url else N8nInstall.default(), n8n_url=n8n_url, n8n_api_key=n8n_api_key,
                   postgres_url=postgres_url, workflows=Path(workflows) if workflows else None,
                   workflow_map=WorkflowMap.read(Path(workflows_map)) if workflows_map else WorkflowMap(),
                   crm_schema=Path(crm_schema) if crm_schema else None)
    try:
        real.start(stt_url=stack.urls["stt"], stt_api_key=stack.settings.stt_api_key, gateway_api_key=gateway_api_key,
                   relay_url=f"{stack.urls['n8n']}/_sim/flows/gateway", avito_url=stack.urls["avito"])
        stack.use_real_n8n(real.crm_url, real.url, real.executions, batch_window=batch_window)
    except BaseException:
        real.stop()  # n8n and Postgres stop with the failure: nothing is left running
        raise
    return real
