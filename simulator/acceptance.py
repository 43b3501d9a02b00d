"""``avito-harness run``: the five-stage acceptance run, with a readable report.

Runs the Gherkin features (``features/``, steps in ``tests/bdd/``) through
pytest in this process, shows a live progress line, then a table per stage
and, for each failure, the scenario, the failing step, the error and the
conversation as the fakes saw it. When scenarios fail, the report opens
with their root causes: failures grouped by the first anomalous hop the
fakes recorded (or, with none on the wire, by the defect a check named),
each with its stable defect code (also in ``--json``).
"""

from __future__ import annotations

import html
import json
import os
import re
import time as _perf
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from rich.table import Table

from avito_harness import bdd as bdd_package
from avito_harness.defects import ROOT_CAUSES, describe
from avito_harness.leaks import mask
from avito_harness.paths import features_dir

__all__ = ["RunOptions", "SECRETS", "ScenarioResult", "root_causes", "run_acceptance", "STAGES"]

#: Where the steps put the secrets of the run (tokens Avito issued, the client secret): the report masks them.
SECRETS = pytest.StashKey[set[str]]()

#: Installed pytest plugins the run never uses: not even imported (hypothesis alone costs a second per run).
UNUSED_PLUGINS = ("hypothesispytest", "schemathesis", "faker", "xdist", "xdist.looponfail", "anyio")

#: Where run_acceptance tells the packaged test module which feature directories to run.
FEATURES_ENV = "AVITO_HARNESS_FEATURES"

STAGES = {
    "stage1": "1 webhook",
    "stage2": "2 inbound",
    "stage3": "3 outbound",
    "stage4": "4 routing",
    "stage5": "5 end to end",
}


@dataclass(frozen=True)
class RunOptions:
    stages: tuple[int, ...] = ()
    gateway_url: str | None = None
    gateway_api_key: str | None = None
    gateway_cmd: str | None = None
    stack_url: str | None = None
    junit: str | None = None
    json_report: str | None = None
    html_report: str | None = None
    select: str | None = None  # a pytest -k expression over scenario names
    features: tuple[str, ...] = ()  # directories of the user's .feature files (our steps)
    only_own_features: bool = False  # run only those, not the harness's
    n8n: str = "light"  # light: the workflows in Python; real: n8n itself (installed, or n8n_url)
    n8n_url: str | None = None
    n8n_api_key: str | None = None
    postgres_url: str | None = None
    workflows: str | None = None  # the user's exported workflows instead of ours
    workflows_map: str | None = None


@dataclass
class ScenarioResult:
    name: str
    stage: str
    outcome: str = "passed"
    duration: float = 0.0
    failed_step: str | None = None
    error: str | None = None
    skip_reason: str | None = None
    transcript: str = ""
    defect: str | None = None  # a stable code from avito_harness.defects.CATALOGUE, for every failure
    anomaly: str | None = None  # the first anomalous hop the fakes recorded, if any
    extra: dict[str, str] = field(default_factory=dict)


class _Collector:
    """A pytest plugin object: one ScenarioResult per scenario, plus a live progress line."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.results: dict[str, ScenarioResult] = {}
        self.total = 0
        self.status: Any = None
        self.config: pytest.Config | None = None

    def pytest_configure(self, config: pytest.Config) -> None:
        self.config = config
        config.stash[SECRETS] = set()

    def masked_results(self) -> list[ScenarioResult]:
        """The results with every secret the steps registered masked (known only once the run is over)."""
        secrets = self.config.stash.get(SECRETS, set()) if self.config is not None else set()
        for r in self.results.values():
            r.error = mask(r.error, secrets) if r.error else r.error
            r.transcript = mask(r.transcript, secrets)
            r.extra = {k: mask(v, secrets) for k, v in r.extra.items()}
        return list(self.results.values())

    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        self.total = len(items)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        stage = next((STAGES[k] for k in STAGES if k in report.keywords), "other")
        if "avito_errors" in report.keywords:
            stage = "Avito errors"
        name = report.nodeid.split("::")[-1].removeprefix("test_").replace("_", " ")
        result = self.results.setdefault(report.nodeid, ScenarioResult(name, stage))
        result.duration += report.duration
        props = {str(k): str(v) for k, v in report.user_properties}
        result.transcript = props.get("transcript", result.transcript)
        result.failed_step = props.get("failed step", result.failed_step)
        if "gateway output" in props:
            result.extra["gateway output"] = props["gateway output"]
        result.anomaly = props.get("anomaly", result.anomaly)
        if report.skipped:
            result.outcome = "skipped"
            longrepr = report.longrepr
            result.skip_reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
        elif report.failed:
            result.outcome = "failed"
            result.error = result.error if report.when == "teardown" and result.error else _short_error(report)
            result.defect = result.defect or props.get("defect") or "unclassified"
        if result.outcome == "failed" and props.get("anomaly code") in ROOT_CAUSES:
            result.defect = props["anomaly code"]  # the wire shows the cause; the failing check is its symptom
        if report.when == "teardown" and self.status is not None:
            done = len(self.results)
            failed = sum(1 for r in self.results.values() if r.outcome == "failed")
            self.status.update(f"[bold]acceptance run[/bold] {done}/{self.total} scenarios, {failed} failed: {name}")


def _short_error(report: pytest.TestReport) -> str:
    crash = getattr(report.longrepr, "reprcrash", None)
    if crash is not None:
        return str(crash.message)[:800]
    return str(report.longrepr)[-800:]


def _feature_dirs(options: RunOptions) -> list[Path]:
    """The directories to run; ValueError names an option that cannot work."""
    if options.only_own_features and not options.features:
        raise ValueError("--only-features needs at least one --features DIR")
    dirs = [] if options.only_own_features else [features_dir()]
    for given in options.features:
        path = Path(given).resolve()
        if not path.is_dir():
            raise ValueError(f"--features {given}: no such directory")
        dirs.append(path)
    return dirs


def run_acceptance(options: RunOptions, console: Console) -> int:
    bdd = Path(bdd_package.__file__).parent  # the packaged scenarios, steps and pytest.ini, wherever installed
    args = [str(bdd / "test_stages.py"), "-c", str(bdd / "pytest.ini"), "--rootdir", str(bdd),
            "-p", "avito_harness.bdd.steps", "-p", "no:terminal", "-o", f"bdd_features_base_dir={bdd}"]
    for plugin in UNUSED_PLUGINS:
        args += ["-p", f"no:{plugin}"]
    if options.stages:
        args += ["-m", " or ".join(f"stage{n}" for n in options.stages)]
    if options.select:
        args += ["-k", options.select]
    args.append(f"--avito-n8n={options.n8n}")
    for flag, value in (("--avito-gateway-url", options.gateway_url), ("--avito-gateway-api-key", options.gateway_api_key),
                        ("--avito-gateway-cmd", options.gateway_cmd), ("--avito-stack-url", options.stack_url),
                        ("--junit-xml", options.junit), ("--avito-n8n-url", options.n8n_url),
                        ("--avito-n8n-api-key", options.n8n_api_key), ("--avito-postgres-url", options.postgres_url),
                        ("--avito-workflows", options.workflows), ("--avito-workflows-map", options.workflows_map)):
        if value:
            args.append(f"{flag}={value}")
    collector = _Collector(console)
    started = _perf.perf_counter()
    previous = os.environ.get(FEATURES_ENV)
    os.environ[FEATURES_ENV] = os.pathsep.join(str(d) for d in _feature_dirs(options))
    try:
        with console.status("[bold]acceptance run[/bold] starting the stack ...") as status:
            collector.status = status
            code = pytest.main(args, plugins=[collector])
    finally:
        if previous is None:
            os.environ.pop(FEATURES_ENV, None)
        else:
            os.environ[FEATURES_ENV] = previous
    elapsed = _perf.perf_counter() - started
    results = collector.masked_results()
    _print(console, results, elapsed, options)
    if options.json_report:
        Path(options.json_report).write_text(json.dumps([asdict(r) for r in results], ensure_ascii=False, indent=1),
                                             encoding="utf-8")
    if options.html_report:
        Path(options.html_report).write_text(_html(results, elapsed), encoding="utf-8")
    if not results:
        console.print(f"[red]no scenario ran (pytest exit code {int(code)})[/red]")
        return 2
    return 1 if any(r.outcome == "failed" for r in results) else 0


def root_causes(results: list[ScenarioResult]) -> list[tuple[str, str, list[ScenarioResult]]]:
    """Failed scenarios grouped by cause, biggest group first: (defect code, what was seen, scenarios)."""
    groups: dict[tuple[str, str], list[ScenarioResult]] = {}
    first_seen: dict[tuple[str, str], str] = {}
    for r in results:
        if r.outcome != "failed":
            continue
        code = r.defect or "unclassified"
        by_wire = bool(r.anomaly) and (code in ROOT_CAUSES or code == "unclassified")
        seen = (r.anomaly if by_wire else r.error) or ""
        seen = seen.splitlines()[0][:300] if seen else ""
        # a named defect is one cause however each scenario words it; what the wire showed, or an unnamed failure,
        # is told apart by what was seen
        key = (code, seen if by_wire or code == "unclassified" else "")
        groups.setdefault(key, []).append(r)
        first_seen.setdefault(key, seen)
    return [(key[0], first_seen[key], members) for key, members in
            sorted(groups.items(), key=lambda g: (-len(g[1]), g[0][0]))]


def _print_root_causes(console: Console, results: list[ScenarioResult]) -> None:
    causes = root_causes(results)
    if not causes:
        return
    ran = sum(1 for r in results if r.outcome != "skipped")
    failed = sum(len(members) for _, _, members in causes)
    console.rule(f"[red bold]Root causes[/red bold]: {failed} failed scenario(s), {len(causes)} cause(s)")
    for n, (code, seen, members) in enumerate(causes, 1):
        who = ("every scenario" if len(members) == ran else
               f"{len(members)} of {ran} scenarios" + (" (every failure)" if len(causes) == 1 else ""))
        console.print(f"{n}. [bold]{who}[/bold] · defect [bold red]{code}[/bold red]: {describe(code)}", highlight=False)
        if seen:
            console.print(f"   {seen}", markup=False, highlight=False)
        names = ", ".join(m.name for m in members[:6]) + (", …" if len(members) > 6 else "")
        console.print(f"   scenarios: {names}", markup=False, highlight=False)


def _print(console: Console, results: list[ScenarioResult], elapsed: float, options: RunOptions) -> None:
    _print_root_causes(console, results)
    target = options.gateway_url or (f"gateway started by: {options.gateway_cmd}" if options.gateway_cmd
                                     else "our gateway (embedded)")
    if options.n8n == "real":
        target += f" · real n8n ({options.n8n_url or 'started by the harness'}, workflows: {options.workflows or 'ours'})"
    table = Table(title=f"Avito rollout acceptance run: {target}", header_style="bold")
    real = options.n8n == "real"
    for column in ("stage", "passed", "failed", "skipped", "time", *(("n8n executions",) if real else ())):
        table.add_column(column, justify="left" if column in ("stage", "n8n executions") else "right")
    order = [*STAGES.values(), "Avito errors", "other"]
    for stage in order:
        mine = [r for r in results if r.stage == stage]
        if not mine:
            continue
        counts = {k: sum(1 for r in mine if r.outcome == k) for k in ("passed", "failed", "skipped")}
        mark = "[green]✔[/green]" if not counts["failed"] else "[red]✘[/red]"
        table.add_row(f"{mark} {stage}", str(counts["passed"]), str(counts["failed"]) if counts["failed"] else "",
                      str(counts["skipped"]) if counts["skipped"] else "", f"{sum(r.duration for r in mine):.1f} s",
                      *((_executions_cell(mine),) if real else ()))
    console.print(table)
    for r in results:
        if r.outcome == "skipped":
            console.print(f"[yellow]skipped[/yellow] {r.stage}: {r.name} ({r.skip_reason})", highlight=False)
    for r in results:
        if r.outcome != "failed":
            continue
        console.rule(f"[red]FAILED[/red] {r.stage}: {r.name}")
        if r.failed_step:
            console.print(f"[bold]step:[/bold] {r.failed_step}", highlight=False)
        console.print(f"[bold]defect:[/bold] {r.defect} ({describe(r.defect or 'unclassified')})", highlight=False)
        if r.anomaly:
            console.print("[bold]first anomaly:[/bold] ", end="")
            console.print(r.anomaly, markup=False, highlight=False)
        console.print("[bold]error:[/bold] ", end="")
        console.print(r.error, markup=False, highlight=False)
        story = r.transcript.splitlines()
        console.print("[bold]what the fakes saw[/bold] (last hops):")
        console.print("\n".join(story[-25:]) or "(nothing)", markup=False, highlight=False)
        if r.extra.get("gateway output"):
            console.print("[bold]gateway output[/bold] (last lines):")
            console.print(r.extra["gateway output"], markup=False, highlight=False)
    counts = {k: sum(1 for r in results if r.outcome == k) for k in ("passed", "failed", "skipped")}
    colour = "red" if counts["failed"] else "green"
    console.print(f"[{colour}]{counts['passed']} passed, {counts['failed']} failed[/{colour}], "
                  f"{counts['skipped']} skipped in {elapsed:.1f} s")


EXECUTION = re.compile(r"n8n execution\s+#(\d+) .+?: (\w+)")


def _executions_cell(results: list[ScenarioResult]) -> str:
    """The real n8n's executions these scenarios caused, from their transcripts: ids to look up in n8n."""
    runs = [(int(m.group(1)), m.group(2)) for r in results for m in EXECUTION.finditer(r.transcript)]
    if not runs:
        return "none"
    failed = [i for i, status in runs if status != "success"]
    ids = sorted(i for i, _ in runs)
    return f"{len(runs)} (#{ids[0]}…#{ids[-1]})" + (f", failed: {', '.join(f'#{i}' for i in failed[:5])}" if failed
                                                   else ", all success")


def _html(results: list[ScenarioResult], elapsed: float) -> str:
    rows = []
    for r in results:
        colour = {"passed": "#dfd", "failed": "#fdd", "skipped": "#ffd"}[r.outcome]
        detail = "".join(
            f"<p><b>{html.escape(k)}:</b> {html.escape(v)}</p>"
            for k, v in (("step", r.failed_step or ""), ("defect", r.defect or ""), ("first anomaly", r.anomaly or ""),
                         ("error", r.error or ""), ("skipped", r.skip_reason or "")) if v
        )
        rows.append(f"<details style='background:{colour};margin:4px;padding:4px'><summary>{html.escape(r.stage)}: "
                    f"{html.escape(r.name)} — {r.outcome} ({r.duration:.2f} s)</summary>{detail}"
                    f"<pre>{html.escape(r.transcript)}</pre></details>")
    return ("<!doctype html><meta charset=utf-8><title>Avito acceptance run</title>"
            f"<h1>Avito rollout acceptance run</h1><p>{len(results)} scenarios in {elapsed:.1f} s</p>" + "".join(rows))
