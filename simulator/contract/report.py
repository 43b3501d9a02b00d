"""The contract check's report: a readable rich table, JUnit XML for CI, and JSON with a defect code per violation."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import asdict
from pathlib import Path

from rich.console import Console
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from avito_harness.contract.runner import OperationResult

__all__ = ["print_report", "write_json", "write_junit"]


def print_report(console: Console, results: list[OperationResult], target: str) -> None:
    table = Table(title=f"gateway contract: {target}", header_style="bold")
    table.add_column("operation")
    table.add_column("calls", justify="right")
    table.add_column("result")
    for r in results:
        absent = [v for v in r.violations if v.defect == "not_implemented"]
        verdict = ("[green]ok[/green]" if r.ok else "[red]not implemented (404)[/red]" if absent
                   else f"[red]{len(r.violations)} violation(s)[/red]")
        if r.skipped:
            verdict += f" [yellow](generation stopped: {r.skipped[:60]})[/yellow]"
        table.add_row(f"{r.label}  ({r.operation})", str(r.calls), verdict)
    console.print(table)
    for r in results:
        for v in r.violations:
            console.print(Panel(Text(v.message), title=f"{r.label}: {v.title} [{v.defect}]", border_style="red",
                                expand=False))
            console.print("reproduce:", v.curl, markup=False, soft_wrap=True, highlight=False)
    bad = sum(1 for r in results if not r.ok)
    summary = f"{len(results) - bad} passed, {bad} failed"
    console.print(("[green]" if not bad else "[red]") + summary + ("[/green]" if not bad else "[/red]"))
    if bad:
        console.print("(export GATEWAY_API_KEY=... to run the curl lines)")


def write_json(path: Path, results: list[OperationResult], target: str, profile: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"target": target, "profile": profile, "operations": [asdict(r) | {"ok": r.ok} for r in results]}
    path.write_text(json.dumps(doc, ensure_ascii=False, indent=1), encoding="utf-8")


def write_junit(path: Path, results: list[OperationResult], target: str) -> None:
    suite = ET.Element("testsuite", name=f"gateway contract {target}", tests=str(len(results)),
                       failures=str(sum(1 for r in results if not r.ok)))
    for r in results:
        case = ET.SubElement(suite, "testcase", classname="gateway.contract", name=f"{r.label} ({r.operation})")
        for v in r.violations:
            failure = ET.SubElement(case, "failure", type=v.defect,
                                    message=f"{v.title}: {v.message.splitlines()[0] if v.message else ''}")
            failure.text = f"{v.message}\n\nreproduce: {v.curl}"
    path.parent.mkdir(parents=True, exist_ok=True)
    root = ET.Element("testsuites")
    root.append(suite)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
