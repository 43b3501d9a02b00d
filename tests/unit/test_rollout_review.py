"""A shop's workflows against the rollout plan: every item of a pre-rollout export named, each fix makes its item
go away (and only what it fixes), and our own workflows, which follow the plan, have nothing to say."""

from __future__ import annotations

import copy
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from avito_harness.paths import workflows_dir
from avito_harness.real.n8n.mapping import read_workflows
from avito_harness.real.n8n.rollout import CHECKS, own_triggers, review

PRE_ROLLOUT = workflows_dir() / "examples" / "pre-rollout"
ITEMS = {code for check in CHECKS for code in check.codes}
EXE = str(Path(sys.executable).with_name("avito-harness"))
Workflows = list[tuple[Path, dict[str, Any]]]


def _codes(workflows: Workflows) -> set[str]:
    return {f.code for f in review(workflows)}


def _node(workflows: Workflows, workflow: str, node: str) -> dict[str, Any]:
    return next(n for _, w in workflows if w["name"] == workflow for n in w["nodes"] if n["name"] == node)


def _drop(workflows: Workflows, workflow: str, *nodes: str) -> None:
    for _, w in workflows:
        if w["name"] == workflow:
            w["nodes"] = [n for n in w["nodes"] if n["name"] not in nodes]


def _normalized(w: Workflows) -> None:
    _node(w, "BAT IN Avito", "Parse Avito webhook")["parameters"]["jsCode"] = (
        "const m = $input.first().json.body;\nreturn [{ json: { chat_id: m.external_chat_id, text: m.text } }];\n")


def _client_credentials(w: Workflows) -> None:
    _node(w, "BAT OUT Avito", "Get token")["parameters"]["bodyParameters"]["parameters"] += [
        {"name": "client_id", "value": "={{ $env.AVITO_CLIENT_ID }}"},
        {"name": "client_secret", "value": "={{ $env.AVITO_CLIENT_SECRET }}"}]


def _v1(w: Workflows) -> None:
    params = _node(w, "BAT OUT Avito", "Send to Avito")["parameters"]
    params["url"] = params["url"].replace("/messenger/v3/", "/messenger/v1/")


def _through_the_gateway(w: Workflows) -> None:
    send = _node(w, "BAT OUT Avito", "Send to Avito")
    send["parameters"].update(url="https://gateway.shop.example/api/messages/send", sendHeaders=False,
                              headerParameters={"parameters": []}, authentication="genericCredentialType",
                              genericAuthType="httpHeaderAuth")
    send["credentials"] = {"httpHeaderAuth": {"id": "k", "name": "Gateway key"}}


def _no_tokens(w: Workflows) -> None:
    _drop(w, "BAT OUT Avito", "Cached token", "Get token", "Keep token")
    _node(w, "BAT OUT Avito", "Send to Avito")["parameters"]["headerParameters"] = {"parameters": []}


def _parameters(w: Workflows) -> None:
    params = _node(w, "BAT OUT Avito", "Save reply")["parameters"]
    params["query"] = ("INSERT INTO messages_history (tenant_id, appeal_id, message_type, channel, text, "
                       "external_message_id)\nVALUES ($1, $2, 'agent', 'avito', $3, $4)")
    params["options"] = {"queryReplacement": "={{ [$json.tenant_id, $json.appeal_id, $json.text, $json.id] }}"}


def _operator(w: Workflows) -> None:
    params = _node(w, "BAT OUT Avito", "Save reply")["parameters"]
    params["query"] = params["query"].replace("'agent'", "'operator'")


def _no_missing_call(w: Workflows) -> None:
    _drop(w, "Message Router", "BAT OUT Telegram")


#: one fix per item: what it changes, and every item it takes away (a send through the gateway is also no longer
#: a call to Avito on the wrong version)
FIXES: dict[str, tuple[Callable[[Workflows], None], set[str]]] = {
    "raw_payload_expected": (_normalized, {"raw_payload_expected"}),
    "token_without_client_credentials": (_client_credentials, {"token_without_client_credentials"}),
    "wrong_api_version": (_v1, {"wrong_api_version"}),
    "bypasses_gateway": (_through_the_gateway, {"bypasses_gateway", "wrong_api_version"}),
    "token_in_workflow": (_no_tokens, {"token_in_workflow", "token_without_client_credentials"}),
    "sql_interpolation": (_parameters, {"sql_interpolation"}),
    "history_row_wrong": (_operator, {"history_row_wrong"}),
    "missing_subworkflow": (_no_missing_call, {"missing_subworkflow"}),
}


def test_the_pre_rollout_export_has_every_item_of_the_plan() -> None:
    assert _codes(read_workflows(PRE_ROLLOUT)) == ITEMS == set(FIXES)


@pytest.mark.parametrize("item", sorted(FIXES))
def test_each_fix_takes_away_its_item_and_nothing_else(item: str) -> None:
    fix, gone = FIXES[item]
    workflows = copy.deepcopy(read_workflows(PRE_ROLLOUT))
    fix(workflows)
    assert _codes(workflows) == ITEMS - gone


def test_with_every_fix_nothing_is_left() -> None:
    workflows = copy.deepcopy(read_workflows(PRE_ROLLOUT))
    for fix, _ in FIXES.values():
        fix(workflows)
    assert review(workflows) == []


#: the planted variant the review must see: what it names (the other variants' defects show only at run time)
INTERPOLATED = "bat-out-interpolates-sql"


@pytest.mark.parametrize("folder", [workflows_dir(), *sorted(p for p in (workflows_dir() / "defects").iterdir()
                                                               if p.is_dir() and p.name != INTERPOLATED)],
                         ids=lambda p: p.name)
def test_workflows_that_follow_the_plan_have_no_finding(folder: Path) -> None:
    assert review(read_workflows(folder)) == []


def test_an_insert_with_the_answer_pasted_in_is_named_and_nothing_else() -> None:
    """Its values come from {{ }} expressions: the review names the interpolation, never a literal it cannot see."""
    found = review(read_workflows(workflows_dir() / "defects" / INTERPOLATED))
    assert [(f.code, f.workflow, f.node) for f in found] == [("sql_interpolation", "BAT OUT Avito", "Write history")]


def _one(node: dict[str, Any], *others: dict[str, Any]) -> set[str]:
    workflows = [(Path("a.json"), {"id": "a", "name": "A", "nodes": [node]}),
                 *((Path(f"{n}.json"), w) for n, w in enumerate(others))]
    return {f"{f.code}: {f.message}" for f in review(workflows)}


def _call(params: dict[str, Any]) -> dict[str, Any]:
    return {"name": "Call", "type": "n8n-nodes-base.executeWorkflow", "typeVersion": 1.2, "parameters": params}


@pytest.mark.parametrize("params", [
    {"workflowId": {"__rl": True, "value": "gone", "mode": "id"}},
    {"workflowId": {"__rl": True, "value": "gone", "mode": "list", "cachedResultName": "Gone"}},
    {"workflowId": {"__rl": True, "value": "https://n8n.shop.example/workflow/gone", "mode": "url"}},
    {"workflowId": "gone"},  # typeVersion 1's plain string
    {"source": "localFile", "workflowPath": "/srv/flows/gone.json"},
    {"source": "url", "workflowUrl": "https://n8n.shop.example/gone.json"},
], ids=["id", "list", "url", "string", "file", "fetched"])
def test_a_sub_workflow_not_in_the_set_is_named_in_every_call_mode(params: dict[str, Any]) -> None:
    (found,) = _one(_call(params))
    assert found.startswith("missing_subworkflow: ")


@pytest.mark.parametrize("params", [
    {"workflowId": {"__rl": True, "value": "a", "mode": "id"}},
    {"workflowId": {"__rl": True, "value": "https://n8n.shop.example/workflow/a", "mode": "url"}},
    {"workflowId": {"__rl": True, "value": "={{ $json.next }}", "mode": "id"}},  # chosen at run time
    {"source": "parameter", "workflowJson": "{}"},
], ids=["id", "url", "expression", "inline"])
def test_a_sub_workflow_in_the_set_or_chosen_at_run_time_is_not(params: dict[str, Any]) -> None:
    assert _one(_call(params)) == set()


def _pg(query: str, **options: str) -> dict[str, Any]:
    return {"name": "Db", "type": "n8n-nodes-base.postgres", "typeVersion": 2.6,
            "parameters": {"operation": "executeQuery", "query": query, "options": options}}


def test_history_rows_are_judged_by_the_columns_and_values_spec_names() -> None:
    spec = "INSERT INTO messages_history (tenant_id, appeal_id, message_type, channel, text) VALUES ($1, $2, {}, {}, $3)"
    assert _one(_pg(spec.format("'operator'", "'avito'"), queryReplacement="={{ [1, 2, 3] }}")) == set()
    assert _one(_pg(spec.format("$4", "$5"), queryReplacement="={{ [1, 2, 3, 'operator', 'avito'] }}")) == set()
    (wrong,) = _one(_pg(spec.format("'operator'", "'telegram'")))
    assert "writes channel 'telegram'" in wrong
    (short,) = _one(_pg("INSERT INTO messages_history (appeal_id, text) VALUES ($1, $2)"))
    assert short.startswith("history_row_wrong:") and "leaves out tenant_id, message_type, channel" in short


def test_an_interpolated_query_is_named_and_query_parameters_are_not() -> None:
    (found,) = _one(_pg("SELECT * FROM appeals WHERE chat = '{{ $json.chat }}'"))
    assert found.startswith("sql_interpolation:") and "{{ $json.chat }}" in found
    assert _one(_pg("SELECT * FROM appeals WHERE chat = $1", queryReplacement="={{ $json.chat }}")) == set()


@pytest.mark.parametrize("code", ["const v = $json.body.payload.value;", "const v = $json.body.payload?.value;",
                                  "const v = $json['payload']['value'];"])
def test_reading_avitos_raw_webhook_is_named_however_it_is_written(code: str) -> None:
    node = {"name": "Parse", "type": "n8n-nodes-base.code", "typeVersion": 2, "parameters": {"jsCode": code}}
    assert {f.split(":")[0] for f in _one(node)} == {"raw_payload_expected"}


def test_workflows_that_run_on_their_own_are_listed() -> None:
    assert own_triggers(read_workflows(PRE_ROLLOUT)) == [
        "workflow 'Appeal debouncer' runs on its own (a schedule: node 'Every 10 seconds')"]
    poller = {"id": "p", "name": "Mail poller", "nodes": [{"name": "Inbox", "type": "n8n-nodes-base.emailReadImap",
                                                            "parameters": {"pollTimes": {"item": []}}}]}
    assert own_triggers([(Path("p.json"), poller)]) == ["workflow 'Mail poller' runs on its own (polling: node 'Inbox')"]


def test_n8n_check_names_every_item_once_and_exits_1_and_0_once_fixed(tmp_path: Path) -> None:
    done = subprocess.run([EXE, "n8n", "check", "--workflows", str(PRE_ROLLOUT), "--workflows-map",
                           str(PRE_ROLLOUT / "mapping.yaml")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stdout[-3000:]
    causes = done.stdout.split("Defects:", 1)[1].split("┏", 1)[0]
    for item in ITEMS:
        assert causes.count(f"defect {item}:") == 1, (item, causes)
    assert "0 passed, 7 failed, 0 not judged of 7 selected" in done.stdout
    assert "note workflow 'Appeal debouncer' runs on its own" in done.stdout


def test_n8n_check_names_a_missing_folder_in_one_line_and_passes_workflows_that_follow_the_plan() -> None:
    missing = subprocess.run([EXE, "n8n", "check", "--workflows", "/nonexistent/export"], capture_output=True,
                             text=True, timeout=60)
    assert missing.returncode == 2
    assert missing.stdout.strip() == ("could not judge (exit 2) [usage_error]: --workflows /nonexistent/export: no "
                                      "such file or directory")
    ours = subprocess.run([EXE, "n8n", "check", "--workflows", str(workflows_dir())], capture_output=True, text=True,
                          timeout=120)
    assert ours.returncode == 0 and "7 passed, 0 failed, 0 not judged of 7 selected" in ours.stdout, ours.stdout
