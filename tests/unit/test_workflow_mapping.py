"""A user's exported workflows made to run in the harness: credentials and hosts mapped, mistakes named."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from avito_harness.real.n8n.mapping import (
    CREDENTIALS,
    MappingError,
    WorkflowMap,
    map_workflows,
    read_workflows,
    write_workflows,
)

HOST = "https://gateway.shop.example"


def _export(tmp_path: Path, credentials: dict[str, dict[str, str]]) -> Path:
    workflow = {"id": "wfOut1", "name": "BAT OUT Avito", "connections": {}, "nodes": [
        {"name": "Send", "type": "n8n-nodes-base.httpRequest", "typeVersion": 4.2, "position": [0, 0],
         "parameters": {"url": f"{HOST}/api/messages/send", "jsonBody": "={{ 1 }}"}, "credentials": credentials}]}
    folder = tmp_path / "export"
    folder.mkdir()
    (folder / "bat-out.json").write_text(json.dumps(workflow), encoding="utf-8")
    return folder


def test_credentials_by_name_and_hosts_become_the_harnesss(tmp_path: Path) -> None:
    folder = _export(tmp_path, {"httpHeaderAuth": {"id": "x1", "name": "Prod gateway key"}})
    mapping = WorkflowMap({"Prod gateway key": "gateway_api_key"}, {HOST: "gateway"})
    (out,) = write_workflows(map_workflows(read_workflows(folder), mapping, urls={"gateway": "http://127.0.0.1:9/relay"}),
                             tmp_path / "out")
    node = json.loads(out.read_text(encoding="utf-8"))["nodes"][0]
    cid, cname = CREDENTIALS["gateway_api_key"]
    assert node["credentials"] == {"httpHeaderAuth": {"id": cid, "name": cname}}
    assert node["parameters"]["url"] == "http://127.0.0.1:9/relay/api/messages/send"


def test_an_unnamed_credential_of_a_known_type_is_matched_by_type(tmp_path: Path) -> None:
    folder = _export(tmp_path, {"postgres": {"id": "p", "name": "Whatever"}})
    (mapped,) = map_workflows(read_workflows(folder), WorkflowMap(), urls={})
    assert mapped["nodes"][0]["credentials"]["postgres"]["name"] == CREDENTIALS["postgres"][1]


def test_a_credential_the_harness_cannot_stand_in_for_is_named(tmp_path: Path) -> None:
    folder = _export(tmp_path, {"telegramApi": {"id": "t", "name": "Shop bot"}})
    with pytest.raises(MappingError, match="node 'Send' uses credential 'Shop bot' \\(telegramApi\\)"):
        map_workflows(read_workflows(folder), WorkflowMap(), urls={})


def test_a_mapping_file_with_an_unknown_role_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "map.yaml"
    path.write_text("credentials:\n  Prod key: api_key\n", encoding="utf-8")
    with pytest.raises(MappingError, match="unknown role"):
        WorkflowMap.read(path)
    path.write_text("creds: {}\n", encoding="utf-8")
    with pytest.raises(MappingError, match="expected the keys"):
        WorkflowMap.read(path)
    path.write_text("webhook: /bat-in/\nurls:\n  'https://x.example': speech_to_text\n", encoding="utf-8")
    assert WorkflowMap.read(path) == WorkflowMap({}, {"https://x.example": "speech_to_text"}, "bat-in")


def test_files_that_are_not_exported_workflows_are_named(tmp_path: Path) -> None:
    (tmp_path / "notes.json").write_text('{"hello": 1}', encoding="utf-8")
    with pytest.raises(MappingError, match="notes.json: not an n8n workflow"):
        read_workflows(tmp_path)
    (tmp_path / "notes.json").write_text('{"name": "x", "nodes": []}', encoding="utf-8")
    with pytest.raises(MappingError, match="has no id"):
        read_workflows(tmp_path)
    (tmp_path / "notes.json").unlink()
    with pytest.raises(MappingError, match="no workflow JSON files"):
        read_workflows(tmp_path)


def _workflow(wid: object, nodes: list[dict[str, Any]]) -> dict[str, Any]:
    return {"id": wid, "name": f"wf {wid}", "connections": {}, "nodes": nodes}


def _node(name: str, credentials: dict[str, dict[str, str]], url: str = "") -> dict[str, Any]:
    return {"name": name, "type": "n8n-nodes-base.httpRequest", "typeVersion": 4.2, "parameters": {"url": url},
            "credentials": credentials}


def test_every_problem_is_listed_at_once_with_the_role_a_credential_could_map_to() -> None:
    workflows = [(Path("a.json"), _workflow("ok1", [
        _node("Cache", {"redis": {"id": "r", "name": "Shop Redis"}}),
        _node("Bot", {"telegramApi": {"id": "t", "name": "Shop bot"}})])),
        (Path("b.json"), _workflow("../../x", [_node("Db", {"postgres": {"id": "p", "name": "Shop DB"}})]))]
    mapping = WorkflowMap({"Shop Redis": "postgres"})
    with pytest.raises(MappingError) as caught:
        map_workflows(workflows, mapping, urls={})
    lines = str(caught.value).splitlines()[1:]
    assert len(lines) == 3, lines  # a wrong role, a credential with no role, an id that is no n8n id
    assert "'Shop Redis', a redis credential; the mapping file maps it to postgres, a postgres credential: " \
           "map it to redis" in lines[0]
    assert "'Shop bot' (telegramApi), which the harness cannot provide" in lines[1]
    assert "its id '../../x' is not an n8n workflow id" in lines[2]


def test_workflows_are_written_under_names_the_harness_chooses(tmp_path: Path) -> None:
    """An id or a name is never a path: nothing is written outside the private folder, whatever the file says."""
    evil = _workflow("pkg", [_node("Db", {"postgres": {"id": "p", "name": "Shop DB"}})])
    evil["name"] = "../../package"
    out = write_workflows(map_workflows([(Path("e.json"), evil)], WorkflowMap(), urls={}), tmp_path / "private")
    assert [p.parent for p in out] == [tmp_path / "private"] and list(tmp_path.iterdir()) == [tmp_path / "private"]
    assert oct((tmp_path / "private").stat().st_mode & 0o777) == "0o700"


def test_avitos_own_host_goes_to_the_fake_avito_and_the_shops_hosts_to_the_recorder() -> None:
    workflows = [(Path("a.json"), _workflow("ok1", [
        _node("Send", {}, "=https://api.avito.ru/messenger/v1/accounts/1/chats/{{ $json.c }}/messages"),
        _node("Tell", {}, "https://crm.shop.example/hooks/ready")]))]
    mapping = WorkflowMap({}, {"https://crm.shop.example": "recorder"})
    (mapped,) = map_workflows(workflows, mapping, urls={"avito": "http://127.0.0.1:7", "recorder": "http://127.0.0.1:8/rec"})
    urls = [n["parameters"]["url"] for n in mapped["nodes"]]
    assert urls == ["=http://127.0.0.1:7/messenger/v1/accounts/1/chats/{{ $json.c }}/messages",
                    "http://127.0.0.1:8/rec/crm.shop.example/hooks/ready"]
    assert mapping.avito_hosts() == {"api.avito.ru"}
