"""What a real n8n ran: its executions, with the failing node and message, from its database or its public API.

n8n answers a webhook 200 ("Workflow was started") before the workflow runs, and 200 with an empty body when a
step fails in "last node" mode, so the harness judges by executions and by effects, never by the status code.
The n8n the harness starts is read from its own SQLite database (no API key needed); a running n8n
(``--n8n-url``) through ``GET /api/v1/executions`` with ``X-N8N-API-KEY``.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx

__all__ = ["ApiExecutions", "Execution", "Executions", "SqliteExecutions", "unflatten"]


@dataclass(frozen=True)
class Execution:
    id: int
    workflow: str
    status: str  # success | error | running | waiting | canceled | crashed
    node: str | None = None  # the node that failed
    error: str | None = None
    #: n8n's execution mode: "trigger" (a schedule or a poll) started on its own, not because of a scenario
    mode: str = "webhook"

    @property
    def on_its_own(self) -> bool:
        return self.mode == "trigger"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        where = f" at node '{self.node}'" if self.node else ""
        return f"n8n execution #{self.id} of '{self.workflow}' {self.status}{where}" + (f": {self.error}" if self.error else "")


class Executions(Protocol):
    def after(self, last_id: int) -> list[Execution]: ...


def unflatten(text: str) -> Any:
    """n8n stores run data in the ``flatted`` format: a JSON list whose strings inside containers are indexes."""
    items = json.loads(text)
    done: dict[int, Any] = {}

    def revive(index: int) -> Any:
        if index in done:
            return done[index]
        value = items[index]
        if isinstance(value, list):
            out: list[Any] = []
            done[index] = out
            out.extend(revive(int(v)) if isinstance(v, str) else v for v in value)
            return out
        if isinstance(value, dict):
            obj: dict[str, Any] = {}
            done[index] = obj
            obj.update({k: revive(int(v)) if isinstance(v, str) else v for k, v in value.items()})
            return obj
        return value

    return revive(0) if items else None


def _failure(data: Any) -> tuple[str | None, str | None]:
    result = (data or {}).get("resultData") or {} if isinstance(data, dict) else {}
    error = result.get("error") or {}
    node = (error.get("node") or {}).get("name") if isinstance(error.get("node"), dict) else None
    message = error.get("message") or error.get("description")
    return node or result.get("lastNodeExecuted"), str(message)[:300] if message else None


class SqliteExecutions:
    """The executions of the n8n the harness started, read from ``<N8N_USER_FOLDER>/.n8n/database.sqlite``."""

    def __init__(self, database: Path) -> None:
        self.database = database

    def after(self, last_id: int) -> list[Execution]:
        if not self.database.exists():
            return []
        with sqlite3.connect(f"file:{self.database}?mode=ro", uri=True, timeout=5) as db:
            rows = db.execute(
                "SELECT e.id, e.status, w.name, d.data, e.mode FROM execution_entity e"
                " LEFT JOIN workflow_entity w ON w.id = e.workflowId"
                " LEFT JOIN execution_data d ON d.executionId = e.id WHERE e.id > ? ORDER BY e.id", (last_id,),
            ).fetchall()
        found = []
        for id_, status, workflow, data, mode in rows:
            node, error = _failure(unflatten(data)) if status in ("error", "crashed") and data else (None, None)
            found.append(Execution(int(id_), str(workflow or "?"), str(status), node, error, str(mode or "webhook")))
        return found


class ApiExecutions:
    """A running n8n's executions through its public API (``--n8n-url`` with ``--n8n-api-key``)."""

    def __init__(self, url: str, api_key: str) -> None:
        self.http = httpx.Client(base_url=url.rstrip("/"), headers={"X-N8N-API-KEY": api_key}, timeout=10)
        self._names: dict[str, str] = {}

    def _workflow(self, workflow_id: str) -> str:
        if workflow_id not in self._names:
            answer = self.http.get(f"/api/v1/workflows/{workflow_id}")
            self._names[workflow_id] = answer.json().get("name", workflow_id) if answer.status_code == 200 else workflow_id
        return self._names[workflow_id]

    def after(self, last_id: int) -> list[Execution]:
        answer = self.http.get("/api/v1/executions", params={"includeData": "true", "limit": 100})
        answer.raise_for_status()
        found = []
        for item in answer.json().get("data", []):
            if int(item["id"]) <= last_id:
                continue
            status = str(item.get("status") or ("success" if item.get("finished") else "error"))
            node, error = _failure(item.get("data")) if status in ("error", "crashed") else (None, None)
            found.append(Execution(int(item["id"]), self._workflow(str(item.get("workflowId"))), status, node, error,
                                   str(item.get("mode") or "webhook")))
        return sorted(found, key=lambda e: e.id)
