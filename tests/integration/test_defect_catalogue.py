"""The defect catalogue: every planted-defect gateway is caught and named by its defect code; ours passes all.

Each double in avito_doubles/catalogue.py is our gateway with one thing
broken. The acceptance run (as a user runs it, ``--gateway-double NAME``) must fail
on it and its ``--json`` report must carry the double's defect code; doubles
marked ``contract`` must also be named by ``avito-harness contract``. The
same run against our own gateway, started by command, must pass (the CI
steps test in tests/packaging runs it from the wheel): a mutation score of
100 % with no false alarm.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from avito_doubles.catalogue import DOUBLES, VARIANTS, Double

from avito_harness.fakes.settings import DEMO_API_KEY, SimSettings
from avito_harness.judge.contract.runner import ContractOptions, check_gateway
from avito_harness.judge.defects import CATALOGUE
from avito_harness.stack.gateway_process import GatewayProcess
from avito_harness.stack.local import Stack

EXE = str(Path(sys.executable).with_name("avito-harness"))
ROOT = Path(__file__).resolve().parents[2]


def _run(tmp_path: Path, *args: str) -> tuple[int, dict[str, Any], str]:
    report = tmp_path / "run.json"
    result = subprocess.run([EXE, "run", "--json", str(report), *args], capture_output=True, text=True, timeout=300,
                            cwd=tmp_path)
    doc = json.loads(report.read_text()) if report.exists() else {"scenarios": [], "root_causes": []}
    return result.returncode, doc, result.stdout


def _judged(tmp_path: Path, name: str, double: Double) -> tuple[int, dict[str, Any], str]:
    """The run a user would make: ``--gateway-double NAME`` starts the double by command, or in-process when only
    the virtual-clock scenarios can see what it breaks, with the options its run needs (its ``args``)."""
    return _run(tmp_path, "--gateway-double", name, *_selection(double))


def _named(doc: dict[str, Any]) -> list[str]:
    """Every defect the report lists, once each (its root causes)."""
    return [str(cause["defect"]) for cause in doc["root_causes"]]


def _selection(double: Double) -> list[str]:
    return [arg for fragment in double.scenarios for arg in ("--scenario", fragment)]


def test_the_catalogue_covers_at_least_20_defect_classes_and_a_double_with_six() -> None:
    codes = {c for d in DOUBLES.values() for c in d.codes}
    assert codes <= set(CATALOGUE) and len(codes) >= 20
    assert max(len(set(d.codes)) for d in DOUBLES.values()) >= 6


@pytest.mark.parametrize("name", sorted(DOUBLES))
def test_the_acceptance_run_names_the_planted_defects_each_once_and_nothing_else(name: str, tmp_path: Path) -> None:
    double = DOUBLES[name]
    code, doc, out = _judged(tmp_path, name, double)
    named = _named(doc)
    assert code == 1, out[-3000:]
    assert sorted(set(named)) == sorted(set(double.codes)), f"{name}: planted {double.codes}, named {named}\n{out[-3000:]}"
    assert len(named) == len(set(named)), f"{name}: a defect listed twice: {named}"
    assert "Defects" in out and all(c in out for c in double.codes)


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_a_legitimate_variant_passes(name: str, tmp_path: Path) -> None:
    """What SPEC allows is no defect under --profile seed (a false alarm here is the harness's bug)."""
    code, doc, out = _judged(tmp_path, name, VARIANTS[name])
    assert code == 0 and _named(doc) == [], out[-3000:]


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with Stack.start(SimSettings(avito_port=0, n8n_port=0, stt_port=0)) as s:
        yield s


@pytest.mark.parametrize("name", sorted(n for n, d in DOUBLES.items() if d.contract))
def test_contract_names_the_planted_defect(name: str, stack: Stack) -> None:
    process = GatewayProcess.wired_to(
        stack, require_healthy=False,
        command=[sys.executable, "-m", "avito_doubles", "serve", name, "--port", "{port}"])
    process.start()
    try:
        chat = stack.avito.account(stack.settings.avito_user_id)["chats"][0]["id"]
        results = check_gateway(ContractOptions(process.url, DEMO_API_KEY, allow_writes=True, chat_ids=(chat,),
                                                max_examples=10)).results
    finally:
        process.stop()
    named = {v.defect for r in results for v in r.violations}
    assert DOUBLES[name].defect in named, named
