"""Reading a real n8n's executions: its ``flatted`` run data, the failing node and message, the watermark."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from avito_harness.real.n8n.executions import SqliteExecutions, unflatten

# What n8n's own `flatted` stringify wrote for run data whose error node object is shared with runData.
FLATTED = ('[{"resultData":"1"},{"error":"2","lastNodeExecuted":"3","runData":"4"},{"message":"5","node":"6"},'
           '"Send via gateway",{"a":"7"},"401 - \\"no key\\"",{"name":"3"},["6","6"]]')


def test_flatted_run_data_is_revived_with_shared_objects() -> None:
    data = unflatten(FLATTED)
    error = data["resultData"]["error"]
    assert error == {"message": '401 - "no key"', "node": {"name": "Send via gateway"}}
    assert data["resultData"]["runData"]["a"][0] is error["node"]  # one object, as n8n had it


def _n8n_database(path: Path) -> None:
    """The three tables (only the columns the reader uses) of n8n's SQLite database."""
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE workflow_entity (id TEXT, name TEXT)")
        db.execute("CREATE TABLE execution_entity (id INTEGER, status TEXT, workflowId TEXT, mode TEXT)")
        db.execute("CREATE TABLE execution_data (executionId INTEGER, data TEXT)")
        db.execute("INSERT INTO workflow_entity VALUES ('w1', 'BAT OUT Avito')")
        db.executemany("INSERT INTO execution_entity VALUES (?, ?, 'w1', ?)",
                       [(1, "success", "webhook"), (2, "error", "integrated"), (3, "running", "trigger")])
        db.executemany("INSERT INTO execution_data VALUES (?, ?)", [(1, '[{}]'), (2, FLATTED), (3, '[{}]')])


def test_a_failed_execution_names_its_workflow_node_and_message(tmp_path: Path) -> None:
    _n8n_database(tmp_path / "database.sqlite")
    found = SqliteExecutions(tmp_path / "database.sqlite").after(0)
    assert [(e.id, e.status) for e in found] == [(1, "success"), (2, "error"), (3, "running")]
    failed = found[1]
    assert (failed.workflow, failed.node, failed.error) == ("BAT OUT Avito", "Send via gateway", '401 - "no key"')
    assert failed.describe() == "n8n execution #2 of 'BAT OUT Avito' error at node 'Send via gateway': 401 - \"no key\""
    assert [e.id for e in SqliteExecutions(tmp_path / "database.sqlite").after(2)] == [3]
    # a schedule's run started on its own: never counted against the scenario that happens to be running
    assert [e.on_its_own for e in found] == [False, False, True]


def test_no_database_yet_means_no_executions(tmp_path: Path) -> None:
    assert SqliteExecutions(tmp_path / "missing.sqlite").after(0) == []
