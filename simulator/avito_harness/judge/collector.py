"""The pytest plugin object behind ``avito-harness run``: runs exactly the selected scenarios and records each
one's outcome from its own phases.

A scenario counts as passed only when its call phase ran and passed and the checks after it found nothing; a
setup report is never a pass. Whatever did not finish stays "not judged", with the reason (a skip at run
time, a deadline, a run that stopped). A problem with the environment (the gateway could not be started again,
the run deadline) stops the run; the scenarios it kept from running are listed as not judged.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import pytest

from avito_harness.judge.classify import Outcome
from avito_harness.judge.defects import ROOT_CAUSES
from avito_harness.judge.environment import Environment
from avito_harness.judge.features import PlannedScenario, stage_of, template_of
from avito_harness.judge.leaks import mask
from avito_harness.judge.results import NOT_RUN, Recorded, ScenarioResult
from avito_harness.judge.safe_text import visible, visible_line
from avito_harness.judge.steps.fixtures import ENVIRONMENT, SECRETS
from avito_harness.judge.verdict import CannotJudge, Category

__all__ = ["Collector", "item_key"]

#: Categories that mean the environment itself is gone: no later scenario can be judged.
STOPS_THE_RUN = (Category.SETUP, Category.PIPELINE)


def item_key(item: pytest.Item) -> tuple[str, str, tuple[str, ...] | None] | None:
    """The (feature file, scenario name, example values) a pytest-bdd item runs; None for any other item."""
    template = template_of(item)
    if template is None:
        return None
    example = getattr(getattr(item, "callspec", None), "params", {}).get("_pytest_bdd_example")
    return (str(template.feature.filename), str(template.name), tuple(example.values()) if example else None)


class Collector:
    def __init__(self, selected: Sequence[PlannedScenario], env: Environment, *, run_timeout: float,
                 progress: Any = None) -> None:
        self.env = env
        self.results: dict[tuple[str, str, tuple[str, ...] | None], ScenarioResult] = {
            p.key: ScenarioResult(p.name, stage_of(p.tags, p.feature), p.feature, p.where) for p in selected}
        self.by_node: dict[str, ScenarioResult] = {}
        self.run_timeout = run_timeout
        self.deadline = time.monotonic() + run_timeout
        if env is not None:
            env.run_deadline = self.deadline
        self.progress = progress
        self.problem: CannotJudge | None = None
        self.stopped: str | None = None
        self.finished = 0
        self.session: pytest.Session | None = None
        self.config: pytest.Config | None = None

    # --- set-up and selection -------------------------------------------------------------------------------
    def pytest_configure(self, config: pytest.Config) -> None:
        self.config = config
        config.stash[SECRETS] = set()
        config.stash[ENVIRONMENT] = self.env

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        self.session = session

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, config: pytest.Config, items: list[pytest.Item]) -> None:
        keep, drop = [], []
        for item in items:
            key = item_key(item)
            if key in self.results:
                keep.append(item)
                self.by_node[item.nodeid] = self.results[key]
            else:
                drop.append(item)
        if drop:
            config.hook.pytest_deselected(items=drop)
        items[:] = keep
        collected = {id(r) for r in self.by_node.values()}
        for result in self.results.values():
            if id(result) not in collected:
                result.not_judged(Category.SETUP.value, "selected but not collected (a harness bug: please report it)")

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed and self.problem is None:
            self.problem = CannotJudge(Category.FEATURE, f"the features could not be collected: {_short(report)}")

    def pytest_keyboard_interrupt(self, excinfo: Any) -> None:
        if self.problem is None:
            what = "stopped (Ctrl-C or SIGTERM)" if isinstance(excinfo.value, KeyboardInterrupt) else f"stopped: {excinfo.value}"
            self.problem = CannotJudge(Category.NOT_JUDGED, f"the run was {what}")

    # --- running --------------------------------------------------------------------------------------------
    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_protocol(self, item: pytest.Item, nextitem: pytest.Item | None) -> bool | None:
        if self.stopped is None and time.monotonic() > self.deadline:
            self._stop(f"the run deadline of {self.run_timeout:g} s (--run-timeout) was hit")
        return True if self.stopped is not None else None

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        result = self.by_node.get(report.nodeid)
        if result is None:
            return
        result.duration += report.duration
        props = {str(k): str(v) for k, v in report.user_properties}
        result.transcript = props.get(Recorded.TRANSCRIPT, result.transcript)
        result.failed_step = props.get(Recorded.FAILED_STEP, result.failed_step)
        result.anomaly = props.get(Recorded.ANOMALY, result.anomaly)
        if Recorded.GATEWAY_OUTPUT in props:
            result.extra["gateway output"] = props[Recorded.GATEWAY_OUTPUT]
        carried = report.__dict__.get("avito_outcome")
        outcome = Outcome.from_strings(carried) if carried else None
        if report.skipped:
            wasxfail = getattr(report, "wasxfail", None)
            why = f"marked xfail ({wasxfail or 'no reason given'})" if wasxfail is not None else _skip_reason(report)
            result.not_judged(Category.NOT_JUDGED.value, f"skipped: {why}")
        elif report.when == "call" and report.passed:
            result.passed()
        elif report.failed:
            self._failure(result, report, outcome)
        code = props.get(Recorded.ANOMALY_CODE)
        if result.outcome == "failed" and code in ROOT_CAUSES and result.defect not in (code, "gateway_crashed"):
            result.defect = code  # the wire shows the cause; the failing check is its symptom
            if all(d["code"] != code for d in result.defects):
                result.defects.insert(0, {"code": code, "message": result.anomaly or "", "step": "(on the wire)"})
        if report.when == "teardown":
            self.finished += 1
        if report.when == "teardown" and self.progress is not None:
            done = self.finished
            failed = sum(1 for r in self.by_node.values() if r.outcome == "failed")
            self.progress(f"{done}/{len(self.results)} scenarios, {failed} failed: {result.name}")

    def _failure(self, result: ScenarioResult, report: pytest.TestReport, outcome: Outcome | None) -> None:
        error = _short(report)
        if outcome is None:  # an error pytest raised itself (a missing fixture, an internal error)
            outcome = Outcome("not_judged", category=Category.SETUP, reason=f"the harness failed: {error}")
        if outcome.kind == "not_judged":
            if result.outcome != "failed":
                result.not_judged((outcome.category or Category.NOT_JUDGED).value, outcome.reason)
            if outcome.category in STOPS_THE_RUN:
                self._stop(outcome.reason)
            return
        if report.when == "setup":  # a check never fails in set-up: the harness could not prepare the scenario
            result.not_judged(Category.SETUP.value, f"the scenario could not be set up: {error}")
            return
        if report.when == "teardown" and result.outcome == "failed" and outcome.defect != "gateway_crashed":
            return  # the checks after the scenario only judge a scenario whose steps passed
        # every finding is listed with its own words: the exception's text would only repeat them
        result.failed(outcome.defect or "unclassified", None if outcome.findings else error, outcome.findings)

    def _stop(self, reason: str) -> None:
        if self.stopped is None:
            self.stopped = reason
            if self.problem is None:
                self.problem = CannotJudge(Category.NOT_JUDGED, f"the run stopped: {reason}")
            if self.session is not None:
                self.session.shouldstop = reason

    # --- the end --------------------------------------------------------------------------------------------
    def final_results(self) -> list[ScenarioResult]:
        """Every selected scenario, in run order: secrets masked and control characters made visible (known
        only once the run is over), scenarios the run never reached said to be so."""
        secrets = self.config.stash.get(SECRETS, set()) if self.config is not None else set()
        for r in self.results.values():
            if r.outcome == "not_judged" and r.reason == NOT_RUN and self.stopped:
                r.reason = f"not run: {self.stopped}"
            r.error = visible(mask(r.error, secrets)) if r.error else r.error
            r.defects = [{k: visible(mask(v, secrets)) for k, v in d.items()} for d in r.defects]
            r.transcript = visible(mask(r.transcript, secrets))
            r.extra = {k: visible(mask(v, secrets)) for k, v in r.extra.items()}
            r.anomaly = visible_line(mask(r.anomaly, secrets), 600) if r.anomaly else r.anomaly
            r.reason = visible_line(mask(r.reason, secrets), 600) if r.reason else r.reason
            r.failed_step = visible_line(r.failed_step, 300) if r.failed_step else r.failed_step
            r.name = visible_line(r.name, 300)
        ordered = list(self.by_node.values())
        seen = {id(r) for r in ordered}
        return ordered + [r for r in self.results.values() if id(r) not in seen]


def _short(report: pytest.TestReport | pytest.CollectReport) -> str:
    crash = getattr(report.longrepr, "reprcrash", None)
    if crash is not None:
        return str(crash.message)[:800]
    return str(report.longrepr)[-800:]


def _skip_reason(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    text = str(longrepr[2]) if isinstance(longrepr, tuple) else str(longrepr)
    return text.removeprefix("Skipped: ")
