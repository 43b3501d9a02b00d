"""``run --json`` is a versioned document with a schema in contracts/: what the report writes, the schema accepts, and
what it must not say (a pass without a run, an unknown category), the schema refuses."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from avito_harness.judge.report_files import JSON_FORMAT, JSON_VERSION, RunRecord, write_html, write_json
from avito_harness.judge.results import ScenarioResult
from avito_harness.judge.verdict import Category, ExitCode, Verdict
from avito_harness.paths import contracts_dir

SCHEMA = json.loads((contracts_dir() / "run-report.schema.json").read_text(encoding="utf-8"))


def validate(doc: dict[str, Any]) -> None:
    jsonschema.Draft202012Validator(SCHEMA).validate(doc)


def _record() -> RunRecord:
    passed = ScenarioResult(name="The gateway's webhook answers 200", stage="1 webhook", where="f.feature:3")
    passed.passed()
    failed = ScenarioResult(name="A send arrives", stage="3 outbound", where="f.feature:9")
    failed.failed("wrong_api_version", "POST /messenger/v2/...")
    unjudged = ScenarioResult(name="A slow one", stage="My team's check", where="mine.feature:2")
    return RunRecord(Verdict(ExitCode.DEFECTS, "failed", None, None), [passed, failed, unjudged], "our gateway", 1.5,
                     "0.1.0", judged={"gateway": "my-gateway --port {port}", "started_by": "cmd", "profile": "seed",
                                      "strict_avito": False, "n8n": "light", "n8n_url": None, "workflows": None},
                     started_at="2026-12-03T16:00:00Z")


def test_what_the_report_writes_the_schema_accepts(tmp_path: Path) -> None:
    write_json(tmp_path / "run.json", _record())
    doc = json.loads((tmp_path / "run.json").read_text(encoding="utf-8"))
    validate(doc)
    assert (doc["format"], doc["version"], SCHEMA["properties"]["version"]["const"]) == (JSON_FORMAT, JSON_VERSION,
                                                                                          JSON_VERSION)
    assert doc["judged"]["gateway"] == "my-gateway --port {port}" and doc["scenarios"][2]["stage"] == "My team's check"


@pytest.mark.parametrize("broken", [
    lambda d: d["scenarios"][1].update(defect=None),  # failed, but no defect named
    lambda d: d["scenarios"][0].update(outcome="ok"),
    lambda d: d["verdict"].update(category="network_glitch"),
    lambda d: d["verdict"].update(exit_code=3),
    lambda d: d.pop("judged"),
    lambda d: d.update(started_at="yesterday"),
])
def test_the_schema_refuses_what_a_report_must_never_say(broken: Any, tmp_path: Path) -> None:
    write_json(tmp_path / "run.json", _record())
    doc = copy.deepcopy(json.loads((tmp_path / "run.json").read_text(encoding="utf-8")))
    broken(doc)
    with pytest.raises(jsonschema.ValidationError):
        validate(doc)


def test_the_schema_knows_every_category_the_harness_can_give() -> None:
    listed = set(SCHEMA["properties"]["verdict"]["properties"]["category"]["enum"]) - {None}
    assert listed == {c.value for c in Category}


def test_the_html_report_opens_with_what_was_judged_and_the_root_causes(tmp_path: Path) -> None:
    write_html(tmp_path / "run.html", _record())
    page = (tmp_path / "run.html").read_text(encoding="utf-8")
    header, causes, first_scenario = (page.index("my-gateway --port {port}"), page.index("Root causes"),
                                      page.index("<details"))
    assert header < causes < first_scenario
    assert "2026-12-03T16:00:00Z" in page and "0.1.0" in page and "wrong_api_version" in page[causes:first_scenario]
    assert "The gateway&#x27;s webhook" in page  # punctuation kept (escaped for HTML)
