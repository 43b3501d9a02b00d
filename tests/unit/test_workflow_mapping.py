"""A user's exported workflows made to run in the harness: credentials and hosts mapped, mistakes named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from avito_harness.real.n8n.mapping import (
    CREDENTIALS,
    MappingError,
    WorkflowMap,
    load_workflows,
    read_workflows,
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
    (out,) = load_workflows(folder, mapping, urls={"gateway": "http://127.0.0.1:9/relay"}, into=tmp_path / "out")
    node = json.loads(out.read_text(encoding="utf-8"))["nodes"][0]
    cid, cname = CREDENTIALS["gateway_api_key"]
    assert node["credentials"] == {"httpHeaderAuth": {"id": cid, "name": cname}}
    assert node["parameters"]["url"] == "http://127.0.0.1:9/relay/api/messages/send"


def test_an_unnamed_credential_of_a_known_type_is_matched_by_type(tmp_path: Path) -> None:
    folder = _export(tmp_path, {"postgres": {"id": "p", "name": "Whatever"}})
    (out,) = load_workflows(folder, WorkflowMap(), urls={}, into=tmp_path / "out")
    assert json.loads(out.read_text(encoding="utf-8"))["nodes"][0]["credentials"]["postgres"]["name"] == \
        CREDENTIALS["postgres"][1]


def test_a_credential_the_harness_cannot_stand_in_for_is_named(tmp_path: Path) -> None:
    folder = _export(tmp_path, {"telegramApi": {"id": "t", "name": "Shop bot"}})
    with pytest.raises(MappingError, match="node 'Send' uses credential 'Shop bot' \\(telegramApi\\)"):
        load_workflows(folder, WorkflowMap(), urls={}, into=tmp_path / "out")


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
