"""pytest plugin (entry point ``avito_harness``): the simulated stack as fixtures.

* ``sim_stack`` (session): the fakes on free 127.0.0.1 ports, a frozen clock.
* ``sim`` (function): the same stack, reset (stores, faults, journal, clock,
  seed) for this test; ``@pytest.mark.sim(scenario={...} or "file.yaml")``
  loads a scenario after the reset. A fault rule set during the test that
  never fired fails the test: it means the test missed what it meant to break.
  So does any message at the fake n8n's ``/webhook/avito`` that breaks
  ``contracts/normalized-message.schema.json``.
* ``avito``, ``n8n``, ``stt``: control clients of the reset stack; ``clock``: its clock.
  The n8n fake starts in record-only mode here; ``n8n.flows(mode="flows")`` runs the workflows.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:  # the plugin loads in every pytest run of the user's venv: the stack only when a test asks
    from avito_harness.fakes.clock import Clock
    from avito_harness.fakes.settings import SimSettings
    from avito_harness.stack.control_clients import AvitoSim, N8nSim, SttSim
    from avito_harness.stack.local import Stack

__all__ = ["pytest_addoption", "pytest_configure"]


def _taken(parser: pytest.Parser) -> set[str]:
    """Option names other plugins already registered (pytest keeps them per group)."""
    groups = [*getattr(parser, "_groups", ()), getattr(parser, "_anonymous", None)]
    return {name for g in groups if g is not None for o in getattr(g, "options", ()) for name in o.names()}


def _shared(group: pytest.OptionGroup, taken: set[str], short: str, name: str, **kwargs: Any) -> None:
    """One option under the name ``run`` and ``contract`` use (``--gateway-url``) and its ``--avito-`` name; the
    short name is left out when another plugin has it, and the ``--avito-`` name always works."""
    names = [short, name] if short not in taken else [name]
    group.addoption(*names, dest=name.removeprefix("--").replace("-", "_"), **kwargs)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("avito-harness")
    taken = _taken(parser)
    _shared(group, taken, "--gateway-url", "--avito-gateway-url", default=None,
            help="run against this gateway instead of the embedded one")
    _shared(group, taken, "--api-key", "--avito-gateway-api-key", default=None,
            help="X-API-Key of the gateway given by --gateway-url")
    _shared(group, taken, "--gateway-cmd", "--avito-gateway-cmd", default=None,
            help="start the gateway under test with this command ({port} is replaced; it gets the deployment's "
                 "variables); for the step library avito_harness.bdd.steps")
    _shared(group, taken, "--gateway-app", "--avito-gateway-app", default=None, metavar="MODULE:CALLABLE",
            help="a Python gateway in-process on the harness's virtual clock: CALLABLE(settings, clock) -> ASGI app")
    group.addoption("--avito-stack-url", default=None,
                    help="use fakes running elsewhere: avito=URL,n8n=URL,stt=URL (the compose file's acceptance service)")
    group.addoption("--avito-n8n", choices=("light", "real"), default="light",
                    help="light: the workflows played in Python (default); real: n8n itself runs BatteryCRM's workflows "
                         "over a real Postgres (`avito-harness n8n install` first, or --avito-n8n-url)")
    group.addoption("--avito-n8n-url", default=None, help="with --avito-n8n real: a running n8n (its workflows active)")
    group.addoption("--avito-n8n-api-key", default=None, help="its public API key, to read its executions")
    group.addoption("--avito-postgres-url", default=None,
                    help="with --avito-n8n real: the CRM's Postgres (default: the harness starts one)")
    group.addoption("--avito-workflows", default=None,
                    help="with --avito-n8n real: a directory of your exported workflow JSON instead of ours")
    group.addoption("--avito-workflows-map", default=None,
                    help="YAML mapping your workflows' credential names and hosts (see avito_harness.real.n8n.mapping)")
    group.addoption("--avito-request-timeout", type=float, default=10.0,
                    help="seconds the gateway has for a whole answer (default 10)")
    group.addoption("--avito-start-timeout", type=float, default=30.0,
                    help="seconds a gateway started by command has to answer GET /health (default 30)")
    group.addoption("--avito-scenario-timeout", type=float, default=300.0,
                    help="seconds one scenario may take before it is stopped as not judged (default 300)")
    group.addoption("--avito-strict-avito", action="store_true", default=False,
                    help="the fake Avito refuses a near miss (Basic token auth, another API version, ...) as Avito "
                         "does, instead of serving it and naming it")
    group.addoption("--avito-redis", action="store_true", default=False,
                    help="start a real Redis (Debian's redis-server) for the gateway --avito-gateway-cmd starts")
    group.addoption("--avito-profile", choices=("seed", "full"), default="seed",
                    help="seed: judge what SPEC promises (default); full: also our gateway's extensions")
    group.addoption("--sim-seed", type=int, default=None, help="seed for the simulated stack (default 42)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "sim(scenario=None): load a simulator scenario (dict or file) after reset")


@pytest.fixture(scope="session")
def sim_settings(pytestconfig: pytest.Config) -> SimSettings:
    """The fakes' settings: free ports, a frozen clock, n8n recording only; ``--sim-seed`` and the ``SIM_*``
    environment variables apply."""
    from avito_harness.fakes.settings import SimSettings

    overrides: dict[str, Any] = {"avito_port": 0, "n8n_port": 0, "stt_port": 0, "clock": "frozen", "n8n_mode": "record"}
    seed = pytestconfig.getoption("--sim-seed")
    if seed is not None:
        overrides["seed"] = seed
    return SimSettings.from_env(os.environ, **overrides)


@pytest.fixture(scope="session")
def sim_stack(sim_settings: SimSettings) -> Iterator[Stack]:
    """The fakes on free ports for the session; a stack that cannot start ends the session with exit code 2
    (the harness could not judge), never as failed tests."""
    from avito_harness.stack.local import Stack, StackError

    stack = Stack(sim_settings)
    try:
        stack.serve()
    except StackError as exc:
        stack.stop()
        pytest.exit(f"avito-harness could not judge [setup_error]: the simulated stack could not start: {exc}",
                    returncode=2)
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture
def sim(sim_stack: Stack, request: pytest.FixtureRequest) -> Iterator[Stack]:
    """The stack reset for this test (``@pytest.mark.sim(scenario=...)`` loads a scenario after the reset): its
    ``urls``, control clients ``avito``, ``n8n``, ``stt``, ``clock``, ``advance(seconds)``, ``story()``. The test
    fails if a fault rule it armed never fired, or n8n got a message that breaks the normalized-message schema."""
    from avito_harness.fakes.scenario import read_scenario

    sim_stack.reset()
    marker = request.node.get_closest_marker("sim")
    if marker is not None and marker.kwargs.get("scenario") is not None:
        scenario = marker.kwargs["scenario"]
        sim_stack.load_scenario(scenario if isinstance(scenario, dict) else read_scenario(scenario))
    yield sim_stack
    invalid = sim_stack.apps["n8n"].state.n8n.invalid()
    if invalid:
        first = invalid[0]
        pytest.fail(f"n8n received {len(invalid)} message(s) that break normalized-message.schema.json; "
                    f"first: {first.schema_errors}", pytrace=False)
    unfired = sim_stack.unfired_faults()
    if unfired:
        names = ", ".join(f"{svc}:{r['name'] or r['route']}" for svc, rules in unfired.items() for r in rules)
        pytest.fail(f"fault rule(s) never fired: {names}", pytrace=False)


@pytest.fixture
def avito(sim: Stack) -> AvitoSim:
    """The fake Avito's control client: ``account(user_id)``, ``customer_says(user_id, chat_id, text)``,
    ``add_fault(preset, route=..., times=...)``, ``chat(user_id, chat_id)``, ``journal()``, ``tokens(user_id)``."""
    return sim.avito


@pytest.fixture
def n8n(sim: Stack) -> N8nSim:
    """The fake n8n's control client: ``received()``, ``wait_for(count)``, ``add_fault(...)``, ``flows(mode=...)``
    (record-only here; ``flows(mode="flows")`` runs BatteryCRM's workflows), ``appeals()``, ``history()``."""
    return sim.n8n


@pytest.fixture
def stt(sim: Stack) -> SttSim:
    """The fake speech-to-text's control client (what it was asked, its faults)."""
    return sim.stt


@pytest.fixture
def clock(sim: Stack) -> Clock:
    """The stack's virtual clock (frozen): ``now()``, ``advance(seconds)``."""
    return sim.clock
