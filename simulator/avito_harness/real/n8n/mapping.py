"""A user's exported n8n workflows, made to run inside the harness: credentials and hosts mapped, ids kept.

The mapping file (YAML or JSON) is small::

    credentials:                  # credential name in your workflows -> what it is
      "CRM database": postgres
      "Gateway key": gateway_api_key
      "OpenAI": speech_to_text
    urls:                         # a host your workflows call -> the harness's service
      "https://gateway.example.ru": gateway
      "https://api.openai.com/v1": speech_to_text
    webhook: avito                # the path of BAT IN's Webhook node (n8n counts as ready once it answers)

A credential the file does not name is matched by its type (``postgres``, ``httpHeaderAuth``, ``openAiApi``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

__all__ = ["CREDENTIALS", "MappingError", "WorkflowMap", "load_workflows", "read_workflows"]

#: role -> (credential id, credential name) as our workflows name them and the harness creates them
CREDENTIALS: dict[str, tuple[str, str]] = {
    "postgres": ("bcrmPostgres0001", "BatteryCRM Postgres"),
    "gateway_api_key": ("bcrmGatewayKey01", "Avito Gateway API key"),
    "speech_to_text": ("bcrmSpeechToText", "Speech-to-text (OpenAI-compatible)"),
}
TYPES = {"postgres": "postgres", "httpHeaderAuth": "gateway_api_key", "openAiApi": "speech_to_text"}
URL_ROLES = ("gateway", "speech_to_text")


class MappingError(ValueError):
    """The mapping file or a workflow file cannot be used; the message names the file and the problem."""


@dataclass(frozen=True)
class WorkflowMap:
    credentials: dict[str, str] = field(default_factory=dict)
    urls: dict[str, str] = field(default_factory=dict)
    webhook: str = "avito"

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


def _map_credentials(node: dict[str, Any], mapping: WorkflowMap, where: str) -> None:
    for ctype, ref in (node.get("credentials") or {}).items():
        name = ref.get("name") if isinstance(ref, dict) else None
        role = mapping.credentials.get(str(name)) or TYPES.get(ctype)
        if role is None:
            raise MappingError(f"{where}: node '{node.get('name')}' uses credential '{name}' ({ctype}); map it to one "
                               f"of {sorted(CREDENTIALS)} in the mapping file")
        cid, cname = CREDENTIALS[role]
        node["credentials"][ctype] = {"id": cid, "name": cname}


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


def load_workflows(source: Path, mapping: WorkflowMap, *, urls: dict[str, str], into: Path) -> list[Path]:
    """The workflows of ``source`` rewritten for the harness into ``into`` (one file each, inactive on import)."""
    into.mkdir(parents=True, exist_ok=True)
    targets = {prefix: urls[role] for prefix, role in mapping.urls.items()}
    written = []
    for path, workflow in read_workflows(source):
        where = f"{path.name} ({workflow.get('name')})"
        for node in workflow["nodes"]:
            _map_credentials(node, mapping, where)
            node["parameters"] = _map_urls(node.get("parameters") or {}, targets)
        workflow["active"] = False
        out = into / f"{workflow['id']}.json"
        out.write_text(json.dumps(workflow, ensure_ascii=False), encoding="utf-8")
        written.append(out)
    return written
