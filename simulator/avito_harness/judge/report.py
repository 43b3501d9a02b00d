"""The acceptance run's terminal report: root causes first, a table per stage, each failure with its evidence,
what was not judged and why, and the verdict line. Every string from outside is already made visible
(:mod:`avito_harness.judge.safe_text`) and is printed without markup."""

from __future__ import annotations

import re
from collections.abc import Sequence

from rich.console import Console
from rich.table import Table

from avito_harness.judge.defects import ROOT_CAUSES, describe
from avito_harness.judge.results import ScenarioResult
from avito_harness.judge.verdict import Verdict

__all__ = ["STAGE_ORDER", "print_report", "root_causes"]

STAGE_ORDER = ["0 workflows", "1 webhook", "2 inbound", "3 outbound", "4 routing", "5 end to end", "Avito errors"]
EXECUTION = re.compile(r"n8n execution\s+#(\d+) .+?: (\w+)")


#: Codes that name a class too wide to be one defect: their findings are told apart by what was seen.
GENERIC = frozenset({"unclassified", "contract_violation", "workflow_failed"})


def root_causes(results: Sequence[ScenarioResult]) -> list[tuple[str, str, list[ScenarioResult]]]:
    """Each distinct defect once, biggest first: (code, what was seen, the scenarios it showed in). A scenario
    counts towards every defect it found; a named defect is one cause however each scenario saw it."""
    groups: dict[tuple[str, str], list[ScenarioResult]] = {}
    first_seen: dict[tuple[str, str], str] = {}
    for r in results:
        if r.outcome != "failed":
            continue
        findings = r.defects or [{"code": r.defect or "unclassified", "message": r.error or "", "step": ""}]
        for finding in findings:
            code = finding["code"] or "unclassified"
            wire = bool(r.anomaly) and code in ROOT_CAUSES and r.defect == code
            seen = (r.anomaly if wire else finding.get("message")) or ""
            seen = seen.splitlines()[0][:300] if seen else ""
            key = (code, seen if code in GENERIC else "")
            members = groups.setdefault(key, [])
            if r not in members:
                members.append(r)
            first_seen.setdefault(key, seen)
    return [(key[0], first_seen[key], members) for key, members in
            sorted(groups.items(), key=lambda g: (-len(g[1]), g[0][0]))]


def _print_root_causes(console: Console, results: Sequence[ScenarioResult]) -> None:
    causes = root_causes(results)
    if not causes:
        return
    judged = sum(1 for r in results if r.outcome != "not_judged")
    failed = sum(1 for r in results if r.outcome == "failed")
    console.rule(f"[red bold]Defects[/red bold]: {len(causes)} found in {failed} failed scenario(s)")
    for n, (code, seen, members) in enumerate(causes, 1):
        who = ("every scenario" if len(members) == judged else
               f"{len(members)} of {judged} scenarios" + (" (every failure)" if len(causes) == 1 else ""))
        console.print(f"{n}. [bold]{who}[/bold] · defect [bold red]{code}[/bold red]: {describe(code)}", highlight=False)
        if seen:
            console.print(f"   {seen}", markup=False, highlight=False)
        names = ", ".join(m.name for m in members[:6]) + (", …" if len(members) > 6 else "")
        console.print(f"   scenarios: {names}", markup=False, highlight=False)


def _executions_cell(results: Sequence[ScenarioResult]) -> str:
    """The real n8n's executions these scenarios caused, from their transcripts: ids to look up in n8n."""
    runs = [(int(m.group(1)), m.group(2)) for r in results for m in EXECUTION.finditer(r.transcript)]
    if not runs:
        return "none"
    failed = [i for i, status in runs if status != "success"]
    ids = sorted(i for i, _ in runs)
    return f"{len(runs)} (#{ids[0]}…#{ids[-1]})" + (f", failed: {', '.join(f'#{i}' for i in failed[:5])}" if failed
                                                   else ", all success")


def _stage_table(results: Sequence[ScenarioResult], title: str, real_n8n: bool) -> Table:
    table = Table(title=title, header_style="bold")
    for column in ("stage", "passed", "failed", "not judged", "time", *(("n8n executions",) if real_n8n else ())):
        table.add_column(column, justify="left" if column in ("stage", "n8n executions") else "right")
    stages = STAGE_ORDER + sorted({r.stage for r in results} - set(STAGE_ORDER))
    for stage in stages:
        mine = [r for r in results if r.stage == stage]
        if not mine:
            continue
        counts = {k: sum(1 for r in mine if r.outcome == k) for k in ("passed", "failed", "not_judged")}
        mark = ("[red]✘[/red]" if counts["failed"] else "[yellow]?[/yellow]" if counts["not_judged"]
                else "[green]✔[/green]")
        table.add_row(f"{mark} {stage}", str(counts["passed"]), str(counts["failed"] or ""),
                      str(counts["not_judged"] or ""), f"{sum(r.duration for r in mine):.1f} s",
                      *((_executions_cell(mine),) if real_n8n else ()))
    return table


def _labelled(console: Console, label: str, text: str | None) -> None:
    """``label: text`` when there is a text (the text printed as it is, never as markup)."""
    if text:
        console.print(f"[bold]{label}:[/bold] ", end="")
        console.print(text, markup=False, highlight=False)


def _print_failure(console: Console, r: ScenarioResult) -> None:
    console.rule(f"[red]FAILED[/red] {r.stage}: {r.name}")
    _labelled(console, "scenario", r.where)
    _labelled(console, "step", r.failed_step)
    for finding in r.defects or [{"code": r.defect or "unclassified", "message": "", "step": ""}]:
        console.print(f"[bold]defect:[/bold] {finding['code']} ({describe(finding['code'])})", highlight=False)
        if finding.get("message"):
            console.print(f"   {finding['message']}" + (f"  [at: {finding['step']}]" if finding.get("step") else ""),
                          markup=False, highlight=False)
    _labelled(console, "not evaluated", "; ".join(r.not_evaluated))
    _labelled(console, "first anomaly", r.anomaly)
    _labelled(console, "error", r.error)
    story = r.transcript.splitlines()
    console.print("[bold]what the fakes saw[/bold] (last hops):")
    console.print("\n".join(story[-25:]) or "(nothing)", markup=False, highlight=False)
    if r.extra.get("gateway output"):
        console.print("[bold]gateway output[/bold] (last lines, as printed by the gateway):")
        lines = r.extra["gateway output"].splitlines()
        console.print("\n".join(f"  | {line}" for line in lines), markup=False, highlight=False)


def print_report(console: Console, results: Sequence[ScenarioResult], *, title: str, real_n8n: bool, elapsed: float,
                 verdict: Verdict, problems: Sequence[str] = (), not_applicable: Sequence[tuple[str, str]] = (),
                 notes: Sequence[str] = ()) -> None:
    """``notes``: what the user should know about what was judged (workflows that run on their own)."""
    for note in notes:
        console.print("[dim]note[/dim] ", end="")
        console.print(note, markup=False, highlight=False)
    _print_root_causes(console, results)
    if results:
        console.print(_stage_table(results, title, real_n8n))
    for name, why in not_applicable if results else ():
        console.print("[dim]not applicable[/dim] ", end="")
        console.print(f"{name}: {why}", highlight=False, markup=False)
    for r in results:
        if r.outcome == "not_judged":
            console.print(f"[yellow]not judged[/yellow] {r.stage}: {r.name} [{r.category}] ", end="", highlight=False)
            console.print(r.reason or "", markup=False, highlight=False)
    for r in results:
        if r.outcome == "failed":
            _print_failure(console, r)
    if len(problems) > 1:
        console.print(f"[bold]{len(problems)} problems[/bold]:")
        for problem in problems:
            console.print(f"  {problem}", markup=False, highlight=False)
    counts = {k: sum(1 for r in results if r.outcome == k) for k in ("passed", "failed", "not_judged")}
    colour = "red" if counts["failed"] else "yellow" if verdict.code else "green"
    if results:
        console.print(f"[{colour}]{counts['passed']} passed, {counts['failed']} failed, {counts['not_judged']} not "
                      f"judged[/{colour}] of {len(results)} selected in {elapsed:.1f} s")
    else:
        console.print(f"[{colour}]nothing was judged[/{colour}] ({elapsed:.1f} s)")
    console.print(f"[{colour} bold]", end="")
    console.print(verdict.line(), markup=False, highlight=False)
