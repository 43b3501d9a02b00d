"""The run's reports as files: JSON (versioned, with the verdict), HTML and JUnit XML.

Each carries the verdict; a run the harness could not judge says so in every format, as a category
(``setup_error``, ``feature_error``, ``pipeline_error``, ``usage_error``, ``not_judged``) that is never a
defect of the gateway, and no format calls passed what did not run.
"""

from __future__ import annotations

import html
import json
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from avito_harness.judge.defects import describe
from avito_harness.judge.report import root_causes
from avito_harness.judge.results import ScenarioResult
from avito_harness.judge.verdict import Verdict

__all__ = ["JSON_FORMAT", "JSON_VERSION", "RunRecord", "write_html", "write_json", "write_junit"]

JSON_FORMAT = "avito-harness-run"
#: 3: ``judged`` (what was judged, by which options) and ``started_at``; the schema is contracts/run-report.schema.json
JSON_VERSION = 3


@dataclass
class RunRecord:
    """Everything a report file says about one run."""

    verdict: Verdict
    results: Sequence[ScenarioResult]
    target: str
    elapsed: float
    harness_version: str
    problems: Sequence[str] = ()
    not_applicable: Sequence[tuple[str, str]] = ()
    judged: dict[str, Any] = field(default_factory=dict)  # the gateway, the profile, the n8n and the workflows judged
    started_at: str = ""  # UTC, ISO 8601
    extra: dict[str, Any] = field(default_factory=dict)


def _json_doc(record: RunRecord) -> dict[str, Any]:
    return {
        "format": JSON_FORMAT, "version": JSON_VERSION, "harness_version": record.harness_version,
        "target": record.target, "judged": record.judged, "started_at": record.started_at,
        "elapsed": round(record.elapsed, 3), "verdict": record.verdict.as_dict(),
        "problems": list(record.problems),
        "not_applicable": [{"name": n, "reason": why} for n, why in record.not_applicable],
        "root_causes": [{"defect": code, "seen": seen, "scenarios": [m.name for m in members]}
                        for code, seen, members in root_causes(record.results)],
        "scenarios": [asdict(r) for r in record.results], **record.extra,
    }


def write_json(path: Path, record: RunRecord) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_json_doc(record), ensure_ascii=False, indent=1), encoding="utf-8")


def write_junit(path: Path, record: RunRecord) -> None:
    results = record.results
    problem = record.verdict.category is not None and not results
    suite = ET.Element("testsuite", name="avito-harness acceptance run",
                       tests=str(len(results) + len(record.not_applicable) + (1 if problem else 0)),
                       failures=str(sum(1 for r in results if r.outcome == "failed")),
                       errors=str(sum(1 for r in results if r.outcome == "not_judged") + (1 if problem else 0)),
                       skipped=str(len(record.not_applicable)), time=f"{record.elapsed:.3f}")
    if problem:  # nothing ran: the reason is a test case of its own, an error (never a pass)
        case = ET.SubElement(suite, "testcase", classname="avito-harness", name="preflight")
        error = ET.SubElement(case, "error", type=str(record.verdict.category), message=record.verdict.reason or "")
        error.text = "\n".join(record.problems) or record.verdict.reason
    for r in results:
        case = ET.SubElement(suite, "testcase", classname=r.stage, name=r.name, time=f"{r.duration:.3f}")
        if r.outcome == "failed":
            failure = ET.SubElement(case, "failure", type=r.defect or "unclassified",
                                    message=f"[{r.defect}] {describe(r.defect or 'unclassified')}")
            failure.text = "\n".join(x for x in (f"step: {r.failed_step}" if r.failed_step else "", r.error or "",
                                                 f"first anomaly: {r.anomaly}" if r.anomaly else "", r.transcript) if x)
        elif r.outcome == "not_judged":
            ET.SubElement(case, "error", type=str(r.category), message=r.reason or "")
    for name, why in record.not_applicable:
        case = ET.SubElement(suite, "testcase", classname="not applicable", name=name)
        ET.SubElement(case, "skipped", message=why)
    root = ET.Element("testsuites")
    root.append(suite)
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)


def write_html(path: Path, record: RunRecord) -> None:
    rows = []
    for r in record.results:
        colour = {"passed": "#dfd", "failed": "#fdd", "not_judged": "#ffd"}[r.outcome]
        detail = "".join(
            f"<p><b>{html.escape(k)}:</b> {html.escape(v)}</p>"
            for k, v in (("scenario", r.where), ("step", r.failed_step or ""), ("defect", r.defect or ""),
                         ("first anomaly", r.anomaly or ""), ("error", r.error or ""),
                         ("not judged", f"[{r.category}] {r.reason}" if r.outcome == "not_judged" else "")) if v
        )
        rows.append(f"<details style='background:{colour};margin:4px;padding:4px'><summary>{html.escape(r.stage)}: "
                    f"{html.escape(r.name)} — {r.outcome.replace('_', ' ')} ({r.duration:.2f} s)</summary>{detail}"
                    f"<pre>{html.escape(r.transcript)}</pre></details>")
    verdict = record.verdict
    judged = "".join(f"<tr><th align=left>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>"
                     for k, v in record.judged.items() if v not in (None, ""))
    head = (f"<h1>Avito rollout acceptance run</h1><p><b>{html.escape(verdict.line())}</b></p>"
            f"<table>{judged}<tr><th align=left>avito-harness</th><td>{html.escape(record.harness_version)}</td></tr>"
            f"<tr><th align=left>started</th><td>{html.escape(record.started_at)}</td></tr>"
            f"<tr><th align=left>scenarios</th><td>{len(record.results)} in {record.elapsed:.1f} s</td></tr></table>")
    problems = "".join(f"<p>{html.escape(p)}</p>" for p in record.problems)
    causes = "".join(f"<li><b>{html.escape(code)}</b> ({len(members)}): {html.escape(describe(code))}<br>"
                     f"<code>{html.escape(seen)}</code></li>" for code, seen, members in root_causes(record.results))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("<!doctype html><meta charset=utf-8><title>Avito acceptance run</title>" + head + problems
                    + (f"<h2>Root causes</h2><ol>{causes}</ol>" if causes else "") + "".join(rows), encoding="utf-8")
