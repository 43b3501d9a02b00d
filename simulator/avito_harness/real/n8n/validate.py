"""Checks a set of n8n workflows before n8n sees them: what n8n itself would only report at run time, or never.

* every node type exists, at its typeVersion, in the pinned n8n (the node descriptions n8n ships in
  ``dist/types/nodes.json`` of its node packages: what ``n8n export:nodes`` prints);
* every connection joins two nodes of the workflow;
* credentials are named (by id and name), of a credential type n8n knows;
* no hard-coded hosts (only those the mapping file names) and no keys in parameters.

What the rollout plan asks of the workflows (a sub-workflow not in the set, a direct Avito call, an
interpolated query ...) is not a reason the harness cannot run them: :mod:`.rollout` judges it as defects.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from avito_harness.real.n8n.install import N8nInstall

__all__ = ["NodeCatalogue", "strings", "workflow_problems"]

PACKAGES = {"n8n-nodes-base": "n8n-nodes-base", "@n8n/n8n-nodes-langchain": "@n8n/n8n-nodes-langchain"}
HOST = re.compile(r"https?://[^\s\"'`/{}]+")
KEY_HEADERS = {"x-api-key", "authorization", "x-n8n-api-key"}
SECRET = re.compile(r"\b(sk-[A-Za-z0-9_-]{8,}|Bearer\s+[A-Za-z0-9._-]{8,})")


@dataclass(frozen=True)
class NodeCatalogue:
    nodes: dict[str, set[float]]  # "n8n-nodes-base.postgres" -> its type versions
    credentials: set[str]

    @classmethod
    def from_install(cls, install: N8nInstall) -> NodeCatalogue:
        nodes: dict[str, set[float]] = {}
        credentials: set[str] = set()
        for package, prefix in PACKAGES.items():
            types = install.root / "node_modules" / package / "dist" / "types"
            for desc in json.loads((types / "nodes.json").read_text(encoding="utf-8")):
                versions = desc["version"] if isinstance(desc["version"], list) else [desc["version"]]
                nodes.setdefault(f"{prefix}.{desc['name']}", set()).update(float(v) for v in versions)
            credentials.update(c["name"] for c in json.loads((types / "credentials.json").read_text(encoding="utf-8")))
        return cls(nodes, credentials)


def strings(value: Any) -> list[str]:
    """Every string in a node's parameters, however deep."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [s for v in value for s in strings(v)]
    if isinstance(value, dict):
        return [s for v in value.values() for s in strings(v)]
    return []


def _key_headers(params: dict[str, Any]) -> list[str]:
    """Key headers with a literal value (an expression, such as a token a workflow fetched, is the rollout's)."""
    headers = (params.get("headerParameters") or {}).get("parameters") or []
    return [str(h.get("name")) for h in headers if isinstance(h, dict)
            and str(h.get("name", "")).lower() in KEY_HEADERS and not str(h.get("value", "")).startswith("=")]


def _node_problems(where: str, node: dict[str, Any], catalogue: NodeCatalogue | None,
                   hosts: set[str]) -> list[str]:
    name, found = node.get("name"), []
    if catalogue is not None:
        versions = catalogue.nodes.get(str(node.get("type")))
        if versions is None:
            found.append(f"{where}: node '{name}' has type {node.get('type')}, which this n8n does not have")
        elif float(node.get("typeVersion", 1)) not in versions:
            found.append(f"{where}: node '{name}' ({node['type']}) has typeVersion {node.get('typeVersion')}; this "
                         f"n8n has {sorted(versions)}")
    if str(node.get("type")).endswith(".webhook") and not node.get("webhookId"):
        found.append(f"{where}: Webhook node '{name}' has no webhookId: n8n does not register its path (export the "
                     "workflow from n8n, which writes one)")
    for ctype, ref in (node.get("credentials") or {}).items():
        if not (isinstance(ref, dict) and ref.get("id") and ref.get("name")):
            found.append(f"{where}: node '{name}' names its {ctype} credential without id and name")
        if catalogue is not None and ctype not in catalogue.credentials:
            found.append(f"{where}: node '{name}' uses credential type {ctype}, which this n8n does not have")
    params = node.get("parameters") or {}
    for text in strings(params):
        for host in HOST.findall(text):
            if host.rstrip("/") not in hosts:
                found.append(f"{where}: node '{name}' calls the hard-coded host {host} (use a credential, or map it)")
        if SECRET.search(text):
            found.append(f"{where}: node '{name}' carries what looks like a key in its parameters")
    found += [f"{where}: node '{name}' sets the {h} header itself; keys belong in a credential" for h in _key_headers(params)]
    return found


def workflow_problems(workflows: list[tuple[Path, dict[str, Any]]], catalogue: NodeCatalogue | None = None,
                      *, allowed_hosts: set[str] | None = None) -> list[str]:
    """Everything wrong with these workflows as a set (empty: they can be imported and run)."""
    hosts = {h.rstrip("/") for h in allowed_hosts or set()}
    hosts |= {m.group(0) for h in set(hosts) for m in [HOST.match(h)] if m}
    problems: list[str] = []
    for path, workflow in workflows:
        where = f"{path.name} ({workflow.get('name')})"
        names = [str(n.get("name")) for n in workflow["nodes"]]
        if len(set(names)) != len(names):
            problems.append(f"{where}: two nodes share a name")
        for node in workflow["nodes"]:
            problems += _node_problems(where, node, catalogue, hosts)
        for source, outputs in (workflow.get("connections") or {}).items():
            if source not in names:
                problems.append(f"{where}: a connection starts at '{source}', which is not a node")
            for branch in outputs.get("main") or []:
                for link in branch or []:
                    if link.get("node") not in names:
                        problems.append(f"{where}: '{source}' connects to '{link.get('node')}', which is not a node")
    return problems
