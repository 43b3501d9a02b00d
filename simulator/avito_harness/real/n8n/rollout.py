"""What a shop's workflows still get wrong against the rollout plan (SPEC, stages 2-4), read from the workflows.

Each check is one promise of the plan with its defect code; a finding names the workflow and the node:

* sends go through the gateway (``bypasses_gateway``), and no workflow asks for or keeps Avito tokens
  (``token_in_workflow``);
* a call a workflow still makes to Avito itself is one Avito serves (``wrong_api_version``, ``token_without_client_
  credentials``), judged against the Messenger contract in ``contracts/avito`` as the fake Avito judges gateways;
* database queries take values as parameters, never as ``{{ }}`` text (``sql_interpolation``): a customer's
  apostrophe breaks (or rewrites) an interpolated query;
* the reply row is SPEC's (``history_row_wrong``): ``message_type='operator'``, ``channel='avito'``, the tenant
  and the appeal;
* BAT IN reads the gateway's normalized message, not Avito's webhook (``raw_payload_expected``);
* every sub-workflow called (by id, from the list, by URL or from a file) is in the set (``missing_subworkflow``).

Workflows that run on their own (a schedule, a poll) are listed up front: :func:`own_triggers`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from avito_harness.fakes.avito.near_misses import served_template
from avito_harness.paths import contracts_dir
from avito_harness.real.n8n.validate import strings

__all__ = ["AVITO_HOSTS", "CHECKS", "RolloutCheck", "RolloutFinding", "SPEC_HISTORY_COLUMNS", "own_triggers", "review",
           "schema_findings"]

#: Avito's own hosts: a workflow that calls them talks to Avito itself
AVITO_HOSTS = frozenset({"api.avito.ru", "avito.ru", "www.avito.ru"})
EXPRESSION = re.compile(r"\{\{.*?\}\}", re.S)
RAW_PAYLOAD = re.compile(r"payload['\"]?\s*\]?\s*(?:\.|\?\.|\[\s*['\"])\s*value")
HISTORY_INSERT = re.compile(r"insert\s+into\s+(?:\w+\.)?messages_history\s*\(([^)]*)\)\s*(values|select)\s*\(?(.*)",
                            re.I | re.S)
TRIGGERS = {"n8n-nodes-base.scheduleTrigger": "a schedule", "n8n-nodes-base.cron": "a cron schedule",
            "n8n-nodes-base.interval": "an interval"}
#: SPEC's reply row: the columns BAT OUT's INSERT names, and the values it gives two of them
HISTORY_COLUMNS = ("tenant_id", "appeal_id", "message_type", "channel")
HISTORY_VALUES = {"message_type": "operator", "channel": "avito"}
RUNTIME = "\u00a7"  # where a {{ }} expression stood in a query: its value is only known at run time


@dataclass(frozen=True)
class RolloutFinding:
    code: str
    workflow: str
    node: str
    message: str

    @property
    def where(self) -> str:
        return f"workflow '{self.workflow}', node '{self.node}'"


@dataclass(frozen=True)
class RolloutCheck:
    """One promise of the rollout plan: its name in the report, the codes it can find, the stage it belongs to."""

    name: str
    codes: tuple[str, ...]
    stage: str


CHECKS = (
    RolloutCheck("Sends go through the gateway, never to Avito directly", ("bypasses_gateway",), "3"),
    RolloutCheck("No workflow asks Avito for tokens or keeps them", ("token_in_workflow",), "3"),
    RolloutCheck("A call still made to Avito is one Avito serves", ("wrong_api_version",
                                                                    "token_without_client_credentials"), "3"),
    RolloutCheck("Queries take the message as a parameter, never as text", ("sql_interpolation",), "3"),
    RolloutCheck("The reply is saved as SPEC's messages_history row", ("history_row_wrong",), "3"),
    RolloutCheck("BAT IN reads the gateway's normalized message", ("raw_payload_expected",), "2"),
    RolloutCheck("Every sub-workflow called is in the set", ("missing_subworkflow",), "4"),
)


def _plain(text: str) -> str:
    """An n8n parameter without its leading ``=`` and with each ``{{ }}`` as one placeholder segment."""
    return EXPRESSION.sub("X", text[1:] if text.startswith("=") else text)


@cache
def _avito_openapi() -> dict[str, Any]:
    doc = yaml.safe_load((contracts_dir() / "avito" / "avito-messenger.openapi.yaml").read_text(encoding="utf-8"))
    return doc if isinstance(doc, dict) else {}


def _exact(method: str, path: str) -> bool:
    for template, operations in _avito_openapi().get("paths", {}).items():
        pattern = "^" + re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template.rstrip("/"))) + "/?$"
        if method.lower() in operations and re.match(pattern, path):
            return True
    return False


def _headers(params: dict[str, Any]) -> list[str]:
    found = (params.get("headerParameters") or {}).get("parameters") or []
    return [str(h.get("name", "")).lower() for h in found if isinstance(h, dict)]


def _body_names(params: dict[str, Any]) -> str:
    return " ".join(strings({k: v for k, v in params.items() if k not in ("url", "method")}))


def _http_findings(node: dict[str, Any], avito_hosts: frozenset[str]) -> Iterator[tuple[str, str]]:
    params = node.get("parameters") or {}
    url = _plain(str(params.get("url") or ""))
    parts = urlsplit(url)
    if (parts.hostname or "").lower() not in avito_hosts:
        return
    method = str(params.get("method") or params.get("requestMethod") or "GET").upper()
    path = parts.path or "/"
    if path.rstrip("/").endswith("/token"):
        yield "token_in_workflow", f"asks Avito for a token itself ({method} {url}); the gateway holds the token"
        if not re.search(r"client_secret", _body_names(params)):
            yield ("token_without_client_credentials", f"{method} {url} carries no client_id and client_secret: "
                   "Avito answers it 400")
        return
    if "authorization" in _headers(params):
        yield "token_in_workflow", f"sets its own Authorization header for {method} {url}: Avito tokens stay in the gateway"
    if path.startswith("/messenger/"):
        yield ("bypasses_gateway", f"calls Avito's Messenger API itself ({method} {url}); SPEC stage 3 sends through "
               "the gateway's POST /api/messages/send")
        if not _exact(method, path):
            template = served_template(_avito_openapi(), method, path)
            yield ("wrong_api_version", f"{method} {path} is not a call Avito serves"
                   + (f"; Avito serves {method} {template}" if template else ""))


def _redis_findings(node: dict[str, Any]) -> Iterator[tuple[str, str]]:
    params = node.get("parameters") or {}
    keys = [str(params.get(k) or "") for k in ("key", "keyPattern", "propertyName")]
    if any("token" in k.lower() for k in keys):
        yield ("token_in_workflow", f"keeps an Avito token in Redis ({params.get('operation', 'get')} "
               f"{next(k for k in keys if 'token' in k.lower())!r}); the gateway gets and renews tokens itself")


def _history_findings(query: str) -> Iterator[tuple[str, str]]:
    found = HISTORY_INSERT.search(EXPRESSION.sub(RUNTIME, query))
    if found is None:
        return
    columns = [c.strip().strip('"').lower() for c in found.group(1).split(",")]
    missing = [c for c in HISTORY_COLUMNS if c not in columns]
    if missing:
        yield "history_row_wrong", f"its INSERT INTO messages_history leaves out {', '.join(missing)}"
    values = _split_values(found.group(3))
    for column, wanted in HISTORY_VALUES.items():
        if column in columns and columns.index(column) < len(values):
            literal = re.fullmatch(r"'([^']*)'", values[columns.index(column)].strip())
            if literal and RUNTIME not in literal.group(1) and literal.group(1) != wanted:  # {{ }}: known at run time
                yield ("history_row_wrong", f"its INSERT INTO messages_history writes {column} '{literal.group(1)}'; "
                       f"SPEC's reply row has {column}='{wanted}'")


def _split_values(text: str) -> list[str]:
    """The top-level comma-separated expressions of a VALUES list or SELECT (parentheses and quotes respected)."""
    parts, depth, quoted, current = [], 0, False, ""
    for ch in text:
        if ch == "'":
            quoted = not quoted
        elif not quoted and ch == "(":
            depth += 1
        elif not quoted and ch == ")":
            if depth == 0:
                break
            depth -= 1
        elif not quoted and depth == 0 and ch == ",":
            parts.append(current)
            current = ""
            continue
        current += ch
    parts.append(current)
    return [re.split(r"\s+(?:from|returning)\s+", p, flags=re.I)[0] for p in parts]


def _postgres_findings(node: dict[str, Any]) -> Iterator[tuple[str, str]]:
    params = node.get("parameters") or {}
    query = str(params.get("query") or "")
    if EXPRESSION.search(query):
        pieces = ", ".join(sorted({m.group(0) for m in EXPRESSION.finditer(query)})[:3])
        yield ("sql_interpolation", f"builds its query text from {pieces}: a customer's apostrophe breaks the query "
               "(or changes it); pass values as query parameters ($1, with Query Parameters)")
    yield from _history_findings(query)


def _subworkflow_findings(node: dict[str, Any], ids: set[str], names: set[str]) -> Iterator[tuple[str, str]]:
    params = node.get("parameters") or {}
    source = str(params.get("source") or "database")
    if source == "localFile":
        yield "missing_subworkflow", f"runs the workflow file {params.get('workflowPath')!r}, which is not in the set"
        return
    if source == "url":
        yield "missing_subworkflow", f"runs a workflow fetched from {params.get('workflowUrl')!r}, which is not in the set"
        return
    if source == "parameter":
        return  # the workflow travels in the parameter itself
    target = params.get("workflowId")
    if isinstance(target, dict):
        mode, value = str(target.get("mode") or "id"), str(target.get("value") or "")
        if mode == "url":
            value = value.rstrip("/").rsplit("/", 1)[-1]
        named = str(target.get("cachedResultName") or "")
    else:
        mode, value, named = "id", str(target or ""), ""
    if value.startswith("="):
        return  # chosen at run time
    if value not in ids:
        label = f"'{named}' ({value})" if named else value
        also = " (a workflow of that name is in the set, under another id)" if named in names else ""
        yield "missing_subworkflow", f"calls workflow {label} by {mode}, which is not in the set{also}"


def _node_findings(node: dict[str, Any], avito_hosts: frozenset[str], ids: set[str],
                   names: set[str]) -> Iterator[tuple[str, str]]:
    kind = str(node.get("type") or "")
    if kind.endswith(".httpRequest"):
        yield from _http_findings(node, avito_hosts)
    elif kind.endswith(".redis"):
        yield from _redis_findings(node)
    elif kind.endswith(".postgres"):
        yield from _postgres_findings(node)
    elif kind.endswith(".executeWorkflow"):
        yield from _subworkflow_findings(node, ids, names)
    if kind.endswith((".code", ".function", ".functionItem", ".set")) or kind.endswith(".if"):
        if any(RAW_PAYLOAD.search(text) for text in strings(node.get("parameters") or {})):
            yield ("raw_payload_expected", "reads Avito's raw webhook (payload.value); the gateway hands n8n the "
                   "normalized message (SPEC: external_message_id, external_chat_id, text, media ...)")


def review(workflows: list[tuple[Path, dict[str, Any]]], *,
           avito_hosts: frozenset[str] = AVITO_HOSTS) -> list[RolloutFinding]:
    """Every rollout finding of these workflows, one per node and code, in the workflows' order."""
    ids = {str(w.get("id")) for _, w in workflows}
    names = {str(w.get("name")) for _, w in workflows}
    hosts = frozenset(h.lower() for h in avito_hosts)
    found: list[RolloutFinding] = []
    for _, workflow in workflows:
        for node in workflow.get("nodes") or []:
            seen: set[str] = set()
            for code, message in _node_findings(node, hosts, ids, names):
                if code not in seen:
                    seen.add(code)
                    found.append(RolloutFinding(code, str(workflow.get("name")), str(node.get("name")), message))
    return found


#: The columns of messages_history SPEC's INSERT names (BAT OUT's reply row)
SPEC_HISTORY_COLUMNS = ("tenant_id", "appeal_id", "message_type", "channel", "text")


def schema_findings(columns: list[str] | None) -> list[RolloutFinding]:
    """The shop's own messages_history (``--crm-schema``) against SPEC's row: only the columns SPEC names.
    ``None``: the shop's schema has no such table (the harness's fills in)."""
    if columns is None:
        return []
    missing = [c for c in SPEC_HISTORY_COLUMNS if c not in {c.lower() for c in columns}]
    if not missing:
        return []
    return [RolloutFinding("history_row_wrong", "(the shop's CRM schema)", "messages_history",
                           f"the shop's messages_history has no column {', '.join(missing)}: SPEC's reply row names "
                           f"{', '.join(SPEC_HISTORY_COLUMNS)}")]


def own_triggers(workflows: list[tuple[Path, dict[str, Any]]]) -> list[str]:
    """The workflows that start on their own (a schedule, a polling trigger): their executions are theirs."""
    lines = []
    for _, workflow in workflows:
        for node in workflow.get("nodes") or []:
            kind = str(node.get("type") or "")
            if kind in TRIGGERS or "pollTimes" in (node.get("parameters") or {}):
                how = TRIGGERS.get(kind, "polling")
                lines.append(f"workflow '{workflow.get('name')}' runs on its own ({how}: node '{node.get('name')}')")
    return lines
