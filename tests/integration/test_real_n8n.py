"""A real n8n 2.8.4 process: a workflow imported and published before start is live when the server says ready.

Runs when n8n is in the cache (`avito-harness n8n install`, ~4.5 min and 2.3 GB the first time); skipped
with that reason otherwise.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from avito_harness.real.n8n.install import N8N_VERSION, N8nInstall
from avito_harness.real.n8n.server import N8nServer

INSTALLED = N8nInstall.default()
pytestmark = pytest.mark.skipif(INSTALLED.installed_version() != N8N_VERSION,
                                reason=f"n8n {N8N_VERSION} is not in {INSTALLED.root}: run `avito-harness n8n install`")

PROBE = [{"id": "probeWorkflow01", "name": "probe", "active": False, "settings": {"executionOrder": "v1"},
          "connections": {}, "nodes": [{
              "id": "a1b2c3d4-0000-4000-8000-000000000001", "name": "Webhook", "type": "n8n-nodes-base.webhook",
              "typeVersion": 2, "position": [0, 0], "webhookId": "a1b2c3d4-0000-4000-8000-0000000000aa",
              "parameters": {"httpMethod": "POST", "path": "probe", "responseMode": "onReceived", "options": {}}}]}]


def test_a_published_workflow_answers_once_n8n_is_ready(tmp_path: Path) -> None:
    workflow = tmp_path / "probe.json"
    workflow.write_text(json.dumps(PROBE), encoding="utf-8")
    with N8nServer(INSTALLED, workflows=[workflow], ready_path="probe") as n8n:
        assert n8n.ready_seconds is not None and n8n.ready_seconds < 120
        assert n8n.port != n8n.broker_port
        assert httpx.post(f"{n8n.url}/webhook/probe", json={"hello": 1}, timeout=10).status_code == 200
        assert httpx.post(f"{n8n.url}/webhook/unknown", json={}, timeout=10).status_code == 404
        print(f"n8n start-to-ready: {n8n.ready_seconds:.1f} s")
