"""The contract check's report: a readable rich table, JUnit XML for CI, and JSON with a defect code per violation.

Every text from the gateway is already masked and made visible (:meth:`OperationResult.masked`); each format
carries the verdict, and a check the harness could not make is an error, never a pass.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import asdict
from pathlib import Path

from rich.console import Console
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from avito_harness.judge.contract.runner import ContractRun
from avito_harness.judge.verdict import Verdict

__all__ = ["print_report", "write_json", "write_junit"]


def print_report(console: Console, run: ContractRun, target: str) -> None:
    results = run.results
    table = Table(title=Text(f"gateway contract: {target}"), header_style="bold")
    table.add_column("operation")
    table.add_column("calls", justify="right")
    table.add_column("result")
    for r in results:
        absent = [v for v in r.violations if v.defect == "not_implemented"]
        verdict = (Text("not implemented (404)", "red") if absent else
                   Text(f"{len(r.violations)} violation(s)", "red") if not r.ok else
                   Text("not judged", "yellow") if r.skipped else Text("ok", "green"))
        if r.skipped:
            verdict.append(f" ({r.skipped[:80]})", "yellow")
        table.add_row(Text(f"{r.label}  ({r.operation})"), str(r.calls), verdict)
    console.print(table)
    for r in results:
        for v in r.violations:
            console.print(Panel(Text(v.message), title=Text(f"{r.label}: {v.title} [{v.defect}]"), border_style="red",
                                expand=False))
            console.print("reproduce:", v.curl, markup=False, soft_wrap=True, highlight=False)
    bad = sum(1 for r in results if not r.ok)
    unjudged = sum(1 for r in results if r.ok and r.skipped)
    verdict_line = run.verdict()
    colour = "red" if bad else "yellow" if unjudged else "green"
    console.print(f"[{colour}]{len(results) - bad - unjudged} passed, {bad} failed, {unjudged} not judged[/{colour}]")
    if bad:
        console.print("(export GATEWAY_API_KEY=... to run the curl lines)")
    console.print(verdict_line.line(), markup=False, highlight=False)


def _doc(run: ContractRun, target: str, profile: str, verdict: Verdict) -> dict[str, object]:
    return {"target": target, "profile": profile, "verdict": verdict.as_dict(),
            "operations": [asdict(r) | {"ok": r.ok} for r in run.results]}


def write_json(path: Path, run: ContractRun | None, target: str, profile: str, verdict: Verdict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = _doc(run, target, profile, verdict) if run is not None else {
        "target": target, "profile": profile, "verdict": verdict.as_dict(), "operations": []}
    path.write_text(json.dumps(doc, ensure_ascii=False, indent=1), encoding="utf-8")


def write_junit(path: Path, run: ContractRun | None, target: str, verdict: Verdict) -> None:
    results = run.results if run is not None else []
    errors = sum(1 for r in results if r.ok and r.skipped) + (0 if run is not None else 1)
    suite = ET.Element("testsuite", name=f"gateway contract {target}", tests=str(len(results) or 1),
                       failures=str(sum(1 for r in results if not r.ok)), errors=str(errors))
    if run is None:  # nothing was checked: the reason is a test case of its own, an error (never a pass)
        case = ET.SubElement(suite, "testcase", classname="gateway.contract", name="preflight")
        ET.SubElement(case, "error", type=str(verdict.category), message=verdict.reason or "")
    for r in results:
        case = ET.SubElement(suite, "testcase", classname="gateway.contract", name=f"{r.label} ({r.operation})")
        for v in r.violations:
            failure = ET.SubElement(case, "failure", type=v.defect,
                                    message=f"{v.title}: {v.message.splitlines()[0] if v.message else ''}")
            failure.text = f"{v.message}\n\nreproduce: {v.curl}"
        if r.ok and r.skipped:
            ET.SubElement(case, "error", type="not_judged", message=r.skipped)
    path.parent.mkdir(parents=True, exist_ok=True)
    root = ET.Element("testsuites")
    root.append(suite)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
