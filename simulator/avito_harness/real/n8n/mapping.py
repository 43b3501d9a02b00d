"""A user's exported n8n workflows, made to run inside the harness: credentials and hosts mapped, ids kept.

The mapping file (YAML or JSON) is small::

    credentials:                  # credential name in your workflows -> what it is
      "CRM database": postgres
      "Gateway key": gateway_api_key
      "OpenAI": speech_to_text
      "Token cache": redis
    urls:                         # a host your workflows call -> the harness's service
      "https://gateway.example.ru": gateway
      "https://api.openai.com/v1": speech_to_text
      "https://crm.shop.example": recorder   # answers 200 and records (the shop's other services)
    webhook: avito                # the path of BAT IN's Webhook node (n8n counts as ready once it answers)

A credential the file does not name is matched by its type (``postgres``, ``httpHeaderAuth``, ``openAiApi``,
``redis``); Avito's own hosts (``https://api.avito.ru``) go to the fake Avito unless the file says otherwise, so
direct Avito calls are observed and judged. Nothing is written before every problem is found: the workflows
are mapped in memory, checked, and then written under names the harness chooses (never a name from the file).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

__all__ = ["AVITO_URLS", "CREDENTIALS", "MappingError", "WorkflowMap", "map_workflows", "read_workflows",
           "roles_used", "write_workflows"]

#: role -> (credential id, credential name) as our workflows name them and the harness creates them
CREDENTIALS: dict[str, tuple[str, str]] = {
    "postgres": ("bcrmPostgres0001", "BatteryCRM Postgres"),
    "gateway_api_key": ("bcrmGatewayKey01", "Avito Gateway API key"),
    "speech_to_text": ("bcrmSpeechToText", "Speech-to-text (OpenAI-compatible)"),
    "redis": ("bcrmRedis0000001", "BatteryCRM Redis"),
}
TYPES = {"postgres": "postgres", "httpHeaderAuth": "gateway_api_key", "openAiApi": "speech_to_text", "redis": "redis"}
ROLE_TYPES = {role: ctype for ctype, role in TYPES.items()}
URL_ROLES = ("gateway", "speech_to_text", "avito", "recorder")
AVITO_URLS = ("https://api.avito.ru", "http://api.avito.ru")
WORKFLOW_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


class MappingError(ValueError):
    """The mapping file or a workflow file cannot be used; the message names the file and the problem."""


@dataclass(frozen=True)
class WorkflowMap:
    credentials: dict[str, str] = field(default_factory=dict)
    urls: dict[str, str] = field(default_factory=dict)
    webhook: str = "avito"

    def avito_hosts(self) -> frozenset[str]:
        """The hosts that stand for Avito: its own, and those the file maps to the fake Avito."""
        mapped = [prefix for prefix, role in self.urls.items() if role == "avito"]
        return frozenset(urlsplit(u).hostname or "" for u in [*AVITO_URLS, *mapped]) - {""}

    @classmethod
    def read(cls, path: Path) -> WorkflowMap:
        try:
            doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise MappingError(f"{path}: {exc}") from None
        if not isinstance(doc, dict) or set(doc) - {"credentials", "urls", "webhook"}:
            raise MappingError(f"{path}: expected the keys credentials, urls, webhook")
        creds, urls = doc.get("credentials") or {}, doc.get("urls") or {}
        bad = [f"{k}: {v}" for k, v in creds.items() if v not in CREDENTIALS]
        bad += [f"{k}: {v}" for k, v in urls.items() if v not in URL_ROLES]
        if bad:
            raise MappingError(f"{path}: unknown role(s) {bad}; credentials map to {sorted(CREDENTIALS)}, "
                               f"urls to {list(URL_ROLES)}")
        return cls({str(k): str(v) for k, v in creds.items()}, {str(k): str(v) for k, v in urls.items()},
                   str(doc.get("webhook") or "avito").strip("/"))


def read_workflows(source: Path) -> list[tuple[Path, dict[str, Any]]]:
    """Every workflow in a directory of exported JSON files (one workflow or a list per file), or one file."""
    files = sorted(source.glob("*.json")) if source.is_dir() else [source]
    found: list[tuple[Path, dict[str, Any]]] = []
    for path in files:
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise MappingError(f"{path}: not n8n workflow JSON ({exc})") from None
        for workflow in doc if isinstance(doc, list) else [doc]:
            if not isinstance(workflow, dict) or not isinstance(workflow.get("nodes"), list):
                raise MappingError(f"{path}: not an n8n workflow (no 'nodes' list)")
            if not workflow.get("id"):
                raise MappingError(f"{path}: workflow '{workflow.get('name')}' has no id (export it from n8n)")
            found.append((path, workflow))
    if not found:
        raise MappingError(f"{source}: no workflow JSON files")
    return found


def _role(mapping: WorkflowMap, ctype: str, ref: Any) -> str | None:
    """What a credential stands for: the mapping file's role for its name, else its type's."""
    name = ref.get("name") if isinstance(ref, dict) else None
    return mapping.credentials.get(str(name)) or TYPES.get(ctype)


def _map_credentials(node: dict[str, Any], mapping: WorkflowMap, where: str) -> list[str]:
    """The node's credentials replaced by the harness's; the problems (all of them) otherwise."""
    problems = []
    for ctype, ref in (node.get("credentials") or {}).items():
        name = ref.get("name") if isinstance(ref, dict) else None
        named = mapping.credentials.get(str(name))
        fits = TYPES.get(ctype)
        if named is not None and ROLE_TYPES[named] != ctype:
            advice = f"map it to {fits}" if fits else f"the harness has no {ctype} service to map it to"
            problems.append(f"{where}: node '{node.get('name')}' uses credential '{name}', a {ctype} credential; "
                            f"the mapping file maps it to {named}, a {ROLE_TYPES[named]} credential: {advice}")
            continue
        role = _role(mapping, ctype, ref)
        if role is None:
            problems.append(f"{where}: node '{node.get('name')}' uses credential '{name}' ({ctype}), which the harness "
                            f"cannot provide; it provides {', '.join(f'{r} ({t})' for r, t in ROLE_TYPES.items())}")
            continue
        cid, cname = CREDENTIALS[role]
        node["credentials"][ctype] = {"id": cid, "name": cname}
    return problems


def _map_urls(value: Any, urls: dict[str, str]) -> Any:
    if isinstance(value, str):
        for prefix, target in urls.items():
            value = value.replace(prefix.rstrip("/"), target.rstrip("/"))
        return value
    if isinstance(value, list):
        return [_map_urls(v, urls) for v in value]
    if isinstance(value, dict):
        return {k: _map_urls(v, urls) for k, v in value.items()}
    return value


def _targets(mapping: WorkflowMap, urls: dict[str, str]) -> dict[str, str]:
    """Host prefix -> the harness's URL: the file's, Avito's own hosts to the fake Avito, the shop's other hosts to
    the recorder (each host under its own path, so the journal tells them apart)."""
    roles = {**{prefix: "avito" for prefix in AVITO_URLS}, **mapping.urls}
    targets = {}
    for prefix, role in roles.items():
        if role == "recorder":
            host = re.sub(r"^https?://", "", prefix.rstrip("/"))
            targets[prefix] = f"{urls['recorder'].rstrip('/')}/{host}"
        elif role in urls:
            targets[prefix] = urls[role]
    return dict(sorted(targets.items(), key=lambda item: -len(item[0])))  # the longest prefix first


def roles_used(workflows: list[tuple[Path, dict[str, Any]]], mapping: WorkflowMap) -> set[str]:
    """The credential roles these workflows need (the harness starts Redis only for workflows that use it)."""
    used = set()
    for _, workflow in workflows:
        for node in workflow["nodes"]:
            for ctype, ref in (node.get("credentials") or {}).items():
                role = _role(mapping, ctype, ref)
                if role:
                    used.add(role)
    return used


def map_workflows(workflows: list[tuple[Path, dict[str, Any]]], mapping: WorkflowMap, *,
                  urls: dict[str, str]) -> list[dict[str, Any]]:
    """The workflows rewritten for the harness, in memory (inactive on import); :class:`MappingError` lists every
    problem at once. The input is not changed."""
    targets = _targets(mapping, urls)
    problems, mapped = [], []
    for path, original in workflows:
        workflow = json.loads(json.dumps(original))
        where = f"{path.name} ({workflow.get('name')})"
        if not isinstance(workflow.get("id"), str) or not WORKFLOW_ID.fullmatch(workflow["id"]):
            problems.append(f"{where}: its id {workflow.get('id')!r} is not an n8n workflow id (letters, digits, - and _)")
        for node in workflow["nodes"]:
            if not isinstance(node, dict):
                problems.append(f"{where}: a node is not an object")
                continue
            problems += _map_credentials(node, mapping, where)
            node["parameters"] = _map_urls(node.get("parameters") or {}, targets)
        workflow["active"] = False
        mapped.append(workflow)
    if problems:
        raise MappingError("the workflows cannot be imported:\n  " + "\n  ".join(problems))
    return mapped


def write_workflows(workflows: list[dict[str, Any]], into: Path) -> list[Path]:
    """One file per workflow in ``into`` (a private folder), named by position: nothing from the file names a path."""
    into.mkdir(parents=True, exist_ok=True, mode=0o700)
    written = []
    for n, workflow in enumerate(workflows):
        out = into / f"workflow-{n:03d}.json"
        out.write_text(json.dumps(workflow, ensure_ascii=False), encoding="utf-8")
        written.append(out)
    return written
