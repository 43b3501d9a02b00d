"""The step library's fixtures and hooks: the environment (once), a harness per scenario, the checks after it.

``avito-harness run`` prepares the :class:`~avito_harness.judge.environment.Environment` before any scenario
and hands it over in the config's stash; in a user's own pytest suite the session fixture starts it from the
plugin's options, and a gateway or pipeline that cannot start ends the session with exit code 2 (could not
judge), never a failed test. Per scenario: the environment is made clean for it (see ``before_scenario``),
the stack reset with a scenario-specific seed (fresh account and ids; tokens Avito already issued stay
valid, so a gateway that runs on is tested as it runs), and the gateway under test is ours in-process on the
same clock, a running one, or one the harness started.
"""

from __future__ import annotations

import zlib
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

from avito_harness.judge.bounded_http import bounded_client
from avito_harness.judge.classify import classify
from avito_harness.judge.diagnosis import first_anomaly
from avito_harness.judge.environment import USER, Environment, TargetOptions
from avito_harness.judge.features import template_of, unknown_steps
from avito_harness.judge.findings import ScenarioFindings
from avito_harness.judge.leaks import mask
from avito_harness.judge.results import Recorded
from avito_harness.judge.verdict import CannotJudge, Category
from avito_harness.stack.serve import ServedApp, serve_in_thread

from .aftermath import anomaly_of, findings_after_steps, unique
from .harness import Harness

__all__ = ["ENVIRONMENT", "SECRETS", "acceptance_env", "harness", "not_applicable", "pytest_bdd_after_scenario",
           "pytest_bdd_before_step_call", "pytest_bdd_step_error", "pytest_collection_finish",
           "pytest_runtest_makereport"]

#: Where ``avito-harness run`` hands over the environment it prepared (the fixture starts one otherwise).
ENVIRONMENT = pytest.StashKey[Environment]()
#: The scenario's harness, for the pytest-bdd hooks (they get the request, not the fixture).
HARNESS = pytest.StashKey[Harness]()
#: Where the steps put the secrets of the run (tokens Avito issued, the client secret): the reports mask them.
SECRETS = pytest.StashKey[set[str]]()
#: Markers of scenarios only the embedded gateway (or a gateway the harness starts) can run, and why.
NOT_FOR_EXTERNAL = {
    "gateway_clock": "needs the gateway on the harness's virtual clock; only the embedded gateway runs on it (its "
                     "real-time variant runs against any gateway)",
    "gateway_timeout": "would wait out the external gateway's CONNECTION_TIMEOUT in real time",
}
NOT_FOR_URL = {"gateway_start": "needs to start the gateway itself: run with --gateway-cmd"}
NOT_FOR_SEED = {"profile_full": "judges our gateway's extension (the Idempotency-Key header), not a SPEC promise: "
                                "run with --profile full"}


def not_applicable(mode: str, tags: set[str] | frozenset[str], profile: str = "seed") -> str | None:
    """Why a scenario with these tags does not apply to a gateway in ``mode`` judged by ``profile`` (None: it
    applies)."""
    rules = {**(NOT_FOR_SEED if profile == "seed" else {})}
    if mode != "embedded":
        rules.update({**NOT_FOR_EXTERNAL, **(NOT_FOR_URL if mode == "url" else {})})
    return next((why for tag, why in rules.items() if tag in tags), None)


def pytest_collection_finish(session: pytest.Session) -> None:
    """A scenario with a step no definition matches cannot run: like a collection error, it stops the session with
    exit code 2 before anything runs, naming ``file:line`` and the nearest phrase (``avito-harness run`` checks the
    same before it starts anything)."""
    problems = unknown_steps(session.items)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        pytest.exit(f"avito-harness could not judge [feature_error]: {problems[0]}{more}", returncode=2)


@pytest.fixture(scope="session")
def acceptance_env(pytestconfig: pytest.Config) -> Iterator[Environment]:
    """The fakes, the gateway under test and (``--avito-n8n real``) the real pipeline, for the whole session."""
    prepared = pytestconfig.stash.get(ENVIRONMENT, None)
    if prepared is not None:
        yield prepared
        return
    try:
        env = Environment.start(TargetOptions.from_pytest(pytestconfig))
    except CannotJudge as problem:
        pytest.exit(f"avito-harness could not judge [{problem.category}]: {problem.reason}", returncode=2)
    try:
        yield env
    finally:
        env.close()


@pytest.fixture
def harness(request: pytest.FixtureRequest, acceptance_env: Environment, tmp_path: Path) -> Iterator[Harness]:
    env = acceptance_env
    why = not_applicable(env.mode, {m.name for m in request.node.iter_markers()}, env.options.profile)
    if why is not None:
        pytest.skip(why)
    env.before_scenario()
    stack = env.stack
    # what the gateway did between scenarios (its start, a restart, a token it asked for once and kept): evidence
    # for this scenario when nothing in it explains a failure
    earlier = first_anomaly(stack.avito.journal(since=env.journal_mark), [], [])
    stack.reset(seed=zlib.crc32(request.node.nodeid.encode()))
    bounds = env.options.bounds()
    bounds.start_scenario(env.run_deadline)
    served: ServedApp | None = None
    api_key = env.options.api_key
    if env.mode == "embedded":
        served = serve_in_thread(env.embedded_app(api_key, tmp_path / "gateway"), name="gateway")
        url = served.url
    else:
        url = env.gateway_url
    stack.n8n.flows(gateway_url=url, gateway_api_key=api_key)
    h = Harness(env, url, api_key, bounds, bounded_client(bounds, base_url=url, headers={"X-API-Key": api_key}),
                bounded_client(bounds), earlier=earlier)
    for client in (h.api, h.http):
        client.event_hooks["response"] = [h.record]
    h.chat_id = next(c["id"] for c in stack.avito.account(USER)["chats"] if c["chat_type"] == "u2i")
    request.node.stash[HARNESS] = h
    try:
        yield h
    finally:
        secrets = [*stack.avito.tokens(USER), stack.settings.avito_client_secret]
        request.config.stash.setdefault(SECRETS, set()).update(secrets)  # the report masks them too
        try:
            _record_evidence(request, h, secrets)
        finally:
            request.node.user_properties.append((Recorded.TRANSCRIPT, mask(stack.story(), secrets)))
            if env.process is not None:
                lines = [line if len(line) <= 300 else line[:300] + " …(cut)\n" for line in env.process.output[-15:]]
                request.node.user_properties.append((Recorded.GATEWAY_OUTPUT, mask("".join(lines), secrets)))
            h.api.close()
            h.http.close()
            if served is not None:
                served.stop()
            call = getattr(request.node, "rep_call", None)
            env.after_scenario(passed=call is not None and call.passed, limited=h.limited)
            env.journal_mark = max((e["id"] for e in stack.avito.journal()), default=0)


def _n8n_quiet(h: Harness) -> None:
    """A real n8n finishes what the scenario started before the report is written (its executions belong in it)."""
    try:
        h.n8n.settle(timeout=5, batches=False)
    except Exception:  # noqa: BLE001 - still busy: the report shows what finished, the next reset moves on
        pass


def _record_evidence(request: pytest.FixtureRequest, h: Harness, secrets: list[str]) -> None:
    """The scenario's first anomaly (for the report's root causes); a gateway at a URL that stopped answering ends
    the run (nothing after can be judged)."""
    anomaly = anomaly_of(h)
    if anomaly is not None:
        request.node.user_properties.append((Recorded.ANOMALY, mask(anomaly.summary, secrets)))
        if anomaly.code:
            request.node.user_properties.append((Recorded.ANOMALY_CODE, anomaly.code))
    call = getattr(request.node, "rep_call", None)
    if call is not None and call.failed and h.mode == "url" and _gone(h):
        raise CannotJudge(Category.SETUP, f"the gateway at {h.gateway_url} stopped answering (GET /health: no "
                          "answer); it crashed or was stopped, so no later scenario can be judged")


def _gone(h: Harness) -> bool:
    try:
        h.http.get(f"{h.gateway_url}/health")
    except Exception:  # noqa: BLE001 - any failure to answer is "gone" here
        return True
    return False


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, pytest.TestReport,
                                                                                         pytest.TestReport]:
    """A scenario's reports carry what its exception means (``avito_outcome``: plain strings, so that pytest-xdist
    can send the report between processes): a defect or "not judged". Other tests' reports are left alone."""
    report = yield
    if template_of(item) is None:
        return report
    if report.when == "call":
        item.rep_call = report  # type: ignore[attr-defined]
    if call.excinfo is not None and not report.skipped:
        report.__dict__["avito_outcome"] = classify(call.excinfo.value).as_strings()
    return report


def pytest_bdd_before_step_call(request: pytest.FixtureRequest, feature: Any, scenario: Any, step: Any,
                                step_func: Any, step_func_args: Any) -> None:
    h = request.node.stash.get(HARNESS, None)
    if h is not None:
        h.step = f"{step.keyword} {step.name}"


def pytest_bdd_step_error(request: pytest.FixtureRequest, feature: Any, scenario: Any, step: Any, step_func: Any,
                          step_func_args: Any, exception: Exception) -> None:
    """A step the scenario cannot go on without failed (a Given, a When, a check that could not be made)."""
    request.node.user_properties.append((Recorded.FAILED_STEP, f"{step.keyword} {step.name}"))
    request.node.user_properties.append((Recorded.FEATURE, feature.name))
    h = request.node.stash.get(HARNESS, None)
    if h is not None:
        steps = list(scenario.steps)
        later = steps[next((i for i, s in enumerate(steps) if s is step), len(steps)) + 1:]
        h.stopped(exception, f"{step.keyword} {step.name}", [f"{s.keyword} {s.name}" for s in later])


def pytest_bdd_after_scenario(request: pytest.FixtureRequest, feature: Any, scenario: Any) -> None:
    """The steps are over: the checks no step makes run too, and the scenario fails once with every finding."""
    h = request.node.stash.get(HARNESS, None)
    if h is None:
        return
    _n8n_quiet(h)
    secrets = [*h.avito.tokens(USER), h.stack.settings.avito_client_secret]
    h.findings = unique([*h.findings, *findings_after_steps(h, secrets)])
    if h.findings:
        raise ScenarioFindings(h.findings, h.not_evaluated + ([f"the rest: {h.cannot_judge.reason}"]
                                                              if h.cannot_judge else []))
    if h.cannot_judge is not None:
        raise h.cannot_judge
