"""``avito-harness run``: the five-stage acceptance run, judged exactly.

1. The features: every file parsed and every step matched against the step library (seconds); the scenarios
   ``--stage`` and ``--scenario`` select, minus those that do not apply to the gateway given (listed).
2. The environment: the fakes, the real pipeline when asked, the gateway under test started (or reached)
   and answering ``GET /health``.
3. The scenarios, through pytest in this process (``-p no:terminal``: the report is ours), each judged from
   its own phases.
4. The verdict: exit 0 only when every selected scenario ran and passed; 1 when defects were found; 2 when
   the harness could not judge, with the reason on the terminal and in every report.
"""

from __future__ import annotations

import os
import signal
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from avito_harness import bdd as bdd_package
from avito_harness.judge.collector import Collector
from avito_harness.judge.environment import Environment, TargetOptions
from avito_harness.judge.features import PlannedScenario, load_features, select
from avito_harness.judge.report import print_report
from avito_harness.judge.report_files import RunRecord, write_html, write_json, write_junit
from avito_harness.judge.results import ScenarioResult
from avito_harness.judge.steps.fixtures import not_applicable
from avito_harness.judge.verdict import CannotJudge, Category, decide
from avito_harness.paths import features_dir

__all__ = ["FEATURES_ENV", "RunOptions", "run_acceptance"]

#: Installed pytest plugins the run never uses: not even imported (hypothesis alone costs a second per run).
UNUSED_PLUGINS = ("hypothesispytest", "schemathesis", "faker", "xdist", "xdist.looponfail", "anyio")
#: Where run_acceptance tells the packaged test module which feature directories to run.
FEATURES_ENV = "AVITO_HARNESS_FEATURES"


@dataclass(frozen=True, kw_only=True)
class RunOptions:
    target: TargetOptions = field(default_factory=TargetOptions)
    stages: tuple[str, ...] = ()  # "1".."5", "errors"
    scenarios: tuple[str, ...] = ()  # names (or parts of names) as the reports print them
    features: tuple[str, ...] = ()  # directories of the user's .feature files (our steps)
    only_own_features: bool = False  # run only those, not the harness's
    junit: str | None = None
    json_report: str | None = None
    html_report: str | None = None
    run_timeout: float = 3600.0


def _feature_dirs(options: RunOptions) -> list[Path]:
    if options.only_own_features and not options.features:
        raise CannotJudge(Category.USAGE, "--only-features needs at least one --features DIR")
    dirs = [] if options.only_own_features else [features_dir()]
    for given in options.features:
        path = Path(given).resolve()
        if path.is_file():
            raise CannotJudge(Category.USAGE, f"--features {given}: a file; give the folder that holds it")
        if not path.is_dir():
            raise CannotJudge(Category.USAGE, f"--features {given}: no such directory")
        dirs.append(path)
    return dirs


def _pytest_args() -> list[str]:
    bdd = Path(bdd_package.__file__).parent  # the packaged scenarios, steps and pytest.ini, wherever installed
    args = [str(bdd / "test_stages.py"), "-c", str(bdd / "pytest.ini"), "--rootdir", str(bdd),
            "-p", "avito_harness.bdd.steps", "-p", "no:terminal", "-o", f"bdd_features_base_dir={bdd}"]
    for plugin in UNUSED_PLUGINS:
        args += ["-p", f"no:{plugin}"]
    return args


def _judged(target: TargetOptions) -> dict[str, Any]:
    """What the run judged, by which options: the report's header."""
    gateway = target.gateway_url or target.gateway_cmd or target.gateway_app or "our gateway (embedded)"
    return {"gateway": gateway, "started_by": "in-process" if target.gateway_app else target.mode, "profile": target.profile, "strict_avito": target.strict_avito,
            "n8n": target.n8n, "n8n_url": target.n8n_url, "workflows": target.workflows or ("ours" if target.n8n == "real" else None)}


def _target_line(target: TargetOptions) -> str:
    line = target.gateway_url or (f"gateway started by: {target.gateway_cmd}" if target.gateway_cmd
                                  else f"{target.gateway_app} (in-process)" if target.gateway_app
                                  else "our gateway (embedded)")
    line += f" · profile {target.profile}" + (" · strict Avito" if target.strict_avito else "")
    if target.n8n == "real":
        line += f" · real n8n ({target.n8n_url or 'started by the harness'}, workflows: {target.workflows or 'ours'})"
    return line


def _scenarios(options: RunOptions, env: Environment, dirs: list[Path], selected: list[PlannedScenario],
               progress: Callable[[str], None]) -> tuple[list[ScenarioResult], CannotJudge | None]:
    collector = Collector(selected, env, run_timeout=options.run_timeout, progress=progress)
    previous = os.environ.get(FEATURES_ENV)
    os.environ[FEATURES_ENV] = os.pathsep.join(str(d) for d in dirs)
    _forget_earlier_collections()
    try:
        with tempfile.TemporaryDirectory(prefix="avito-harness-run-") as basetemp:  # the scenarios' folders go too
            code = pytest.main([*_pytest_args(), f"--basetemp={basetemp}"], plugins=[collector])
    finally:
        if previous is None:
            os.environ.pop(FEATURES_ENV, None)
        else:
            os.environ[FEATURES_ENV] = previous
    problem = collector.problem
    if problem is None and int(code) in (pytest.ExitCode.INTERNAL_ERROR, pytest.ExitCode.USAGE_ERROR,
                                         pytest.ExitCode.INTERRUPTED):
        problem = CannotJudge(Category.SETUP, f"pytest stopped the run (pytest exit code {int(code)})")
    return collector.final_results(), problem


def _forget_earlier_collections() -> None:
    """A second run in one process (tests, a long-lived tool) collects afresh: the packaged test module binds the
    scenarios of the feature folders it was first imported with, and pytest-bdd keeps the files it parsed."""
    import sys

    from pytest_bdd import feature

    packaged = str(Path(bdd_package.__file__).parent / "test_stages.py")
    for name in [m for m, module in list(sys.modules.items()) if getattr(module, "__file__", None) == packaged]:
        del sys.modules[name]
    feature.features.clear()


def _reviewed(env: Environment) -> list[ScenarioResult]:
    """A user's workflows (``--workflows``) against the rollout plan, before their scenarios."""
    real = getattr(env, "real", None)
    if real is None or getattr(real, "rollout", None) is None:
        return []
    from avito_harness.judge.rollout_results import rollout_results

    return rollout_results(real.rollout, real.triggers)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def run_acceptance(options: RunOptions, console: Console) -> int:
    """The run; SIGTERM (a CI job cancelled, ``timeout``) stops it like Ctrl-C: everything it started is stopped,
    the reports are written, and the verdict says it was stopped."""
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _interrupt) if main else None
    try:
        return _run(options, console)
    finally:
        if main:
            signal.signal(signal.SIGTERM, previous)


def _run(options: RunOptions, console: Console) -> int:
    started = time.perf_counter()
    started_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    results: list[ScenarioResult] = []
    skipped: list[tuple[str, str]] = []
    problem: CannotJudge | None = None
    problems: list[str] = []
    notes: list[str] = []
    with console.status("[bold]acceptance run[/bold] checking the features ...") as status:
        try:
            dirs = _feature_dirs(options)
            planned = load_features(dirs)
            chosen = select(planned, stages=options.stages, names=options.scenarios)
            selected = []
            for p in chosen:
                why = not_applicable(options.target.mode, p.tags, options.target.profile)
                if why is None:
                    selected.append(p)
                else:
                    skipped.append((p.name, why))
            status.update("[bold]acceptance run[/bold] starting the stack and the gateway ...")
            with Environment.start(options.target) as env:
                results, problem = _scenarios(options, env, dirs, selected,
                                              lambda line: status.update(f"[bold]acceptance run[/bold] {line}"))
                results = _reviewed(env) + results
                notes = [f"{line}: its executions are its own, never a scenario's"
                         for line in getattr(env.real, "triggers", None) or []]
        except CannotJudge as exc:
            problem, problems = exc, list(exc.details)
        except KeyboardInterrupt:
            problem = CannotJudge(Category.NOT_JUDGED, "the run was stopped (Ctrl-C or SIGTERM) before it finished")
    if problem is not None and not problems:
        problems = [problem.reason]
    elapsed = time.perf_counter() - started
    verdict = decide([r.outcome for r in results],
                     [(Category(r.category or Category.NOT_JUDGED.value), f"{r.name}: {r.reason}") for r in results
                      if r.outcome == "not_judged"], problem)
    print_report(console, results, title=f"Avito rollout acceptance run: {_target_line(options.target)}",
                 real_n8n=options.target.n8n == "real", elapsed=elapsed, verdict=verdict, problems=problems,
                 not_applicable=skipped, notes=notes)
    record = RunRecord(verdict, results, _target_line(options.target), elapsed, harness_version(), problems, skipped,
                       judged=_judged(options.target), started_at=started_at)
    for path, write in ((options.json_report, write_json), (options.junit, write_junit), (options.html_report, write_html)):
        if path:
            write(Path(path), record)
    return int(verdict.code)


def harness_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("avito-harness")
    except PackageNotFoundError:  # pragma: no cover - running from a bare source tree
        return "unknown (not installed)"
