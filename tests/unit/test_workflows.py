"""BatteryCRM's workflows (workflows/*.json) and the planted-defect variants: importable as a set into n8n 2.8.4.

What n8n would only say at run time (a node type or version it does not have, a connection to nowhere, a
sub-workflow that is not there is the rollout review's) or never (a hard-coded host, a key in a parameter) is checked here, per file.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from avito_harness.paths import workflows_dir
from avito_harness.real.n8n.mapping import CREDENTIALS, WorkflowMap, read_workflows
from avito_harness.real.n8n.validate import NodeCatalogue, workflow_problems
from tests.conftest import installed_n8n

OURS = workflows_dir()
PLANTED = sorted(p for p in (OURS / "defects").iterdir() if p.is_dir())
NAMES = {"BAT IN Avito", "Tenant Resolver", "Universal Batcher", "AI Appeal Router", "Message Router", "BAT OUT Avito"}


def _sets() -> list[tuple[Path, set[str]]]:
    """Each set of workflows with the hosts its mapping file allows (ours: none)."""
    return [(OURS, set()), *((d, set(WorkflowMap.read(d / "mapping.yaml").urls)) for d in PLANTED)]


@pytest.mark.parametrize(("folder", "hosts"), _sets(), ids=lambda v: v.name if isinstance(v, Path) else "")
def test_every_set_resolves_and_hard_codes_no_host_or_key(folder: Path, hosts: set[str]) -> None:
    workflows = read_workflows(folder)
    assert {w["name"] for _, w in workflows} == NAMES
    assert workflow_problems(workflows, allowed_hosts=hosts) == []


def test_the_node_types_and_versions_exist_in_the_pinned_n8n() -> None:
    catalogue = NodeCatalogue.from_install(installed_n8n())
    for folder, hosts in _sets():
        assert workflow_problems(read_workflows(folder), catalogue, allowed_hosts=hosts) == [], folder.name


def test_ours_name_only_the_three_credentials_the_harness_creates() -> None:
    named = {(ref["id"], ref["name"]) for _, w in read_workflows(OURS) for n in w["nodes"]
             for ref in (n.get("credentials") or {}).values()}
    assert named == {CREDENTIALS[role] for role in ("postgres", "gateway_api_key", "speech_to_text")}


def test_they_are_built_from_the_node_types_batterycrm_uses() -> None:
    types = {n["type"].rsplit(".", 1)[1] for _, w in read_workflows(OURS) for n in w["nodes"]}
    assert {"webhook", "executeWorkflowTrigger", "executeWorkflow", "code", "if", "httpRequest", "postgres"} <= types
    (bat_out,) = [w for _, w in read_workflows(OURS) if w["name"] == "BAT OUT Avito"]
    send = next(n for n in bat_out["nodes"] if n["type"].endswith("httpRequest"))
    assert send["parameters"]["genericAuthType"] == "httpHeaderAuth" and "/api/messages/send" in send["parameters"]["url"]
    assert any("INSERT INTO messages_history" in str(n["parameters"].get("query")) for n in bat_out["nodes"])


BROKEN = {"id": "w1", "name": "broken", "connections": {"Start": {"main": [[{"node": "Nowhere", "type": "main",
                                                                             "index": 0}]]}},
          "nodes": [
              {"name": "Start", "type": "n8n-nodes-base.webhook", "typeVersion": 9, "parameters": {}},
              {"name": "Call", "type": "n8n-nodes-base.httpRequest", "typeVersion": 4.2, "parameters": {
                  "url": "https://api.avito.ru/token", "headerParameters": {"parameters": [
                      {"name": "X-API-Key", "value": "prod-key"}]}}},
              {"name": "Sub", "type": "n8n-nodes-base.executeWorkflow", "typeVersion": 1.2,
               "parameters": {"workflowId": {"__rl": True, "value": "gone", "mode": "id"}}},
              {"name": "Ask", "type": "n8n-nodes-base.magic", "typeVersion": 1, "parameters": {},
               "credentials": {"openAiApi": {"id": "", "name": "OpenAI"}}},
          ]}


def test_each_kind_of_problem_is_named() -> None:
    catalogue = NodeCatalogue({"n8n-nodes-base.webhook": {2.0}, "n8n-nodes-base.httpRequest": {4.2},
                               "n8n-nodes-base.executeWorkflow": {1.2}}, {"postgres"})
    problems = "\n".join(workflow_problems([(Path("broken.json"), BROKEN)], catalogue))
    for expected in ("'Start' connects to 'Nowhere', which is not a node", "has typeVersion 9; this n8n has [2.0]",
                     "hard-coded host https://api.avito.ru", "sets the X-API-Key header itself",
                     "type n8n-nodes-base.magic, which this n8n does not",
                     "names its openAiApi credential without id and name", "credential type openAiApi, which this n8n",
                     "Webhook node 'Start' has no webhookId: n8n does not register its path"):
        assert expected in problems
