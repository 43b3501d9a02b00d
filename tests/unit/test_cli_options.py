"""The command line names an option the same way in every command that has it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from avito_harness.cli.parser import build_parser


@pytest.mark.parametrize("spelling", ["--gateway-api-key", "--api-key"])
def test_contract_takes_the_gateway_key_as_run_names_it(spelling: str) -> None:
    args = build_parser().parse_args(["contract", "--gateway-url", "http://127.0.0.1:9", spelling, "k-1"])
    assert args.api_key == "k-1"
    assert build_parser().parse_args(["run", spelling, "k-2"]).gateway_api_key == "k-2"


def _plugin_parser(*taken: str) -> pytest.Parser:
    from _pytest.config.argparsing import Parser

    parser = Parser(_ispytest=True)
    for name in taken:  # another plugin's options, registered before ours
        parser.getgroup("other").addoption(name)
    from avito_harness.pytest_plugin import pytest_addoption

    pytest_addoption(parser)
    return parser


@pytest.mark.parametrize(("spelling", "dest"), [
    ("--gateway-url", "avito_gateway_url"), ("--avito-gateway-url", "avito_gateway_url"),
    ("--gateway-cmd", "avito_gateway_cmd"), ("--avito-gateway-cmd", "avito_gateway_cmd"),
    ("--api-key", "avito_gateway_api_key"), ("--avito-gateway-api-key", "avito_gateway_api_key"),
])
def test_the_pytest_plugin_takes_runs_names_and_its_old_ones(spelling: str, dest: str) -> None:
    assert getattr(_plugin_parser().parse([f"{spelling}=x"]), dest) == "x"


def test_a_name_another_plugin_has_is_left_to_it() -> None:
    parser = _plugin_parser("--api-key")
    assert parser.parse(["--api-key=theirs", "--avito-gateway-api-key=ours"]).avito_gateway_api_key == "ours"


def test_the_pytest_plugin_costs_nothing_until_a_test_asks_for_the_stack() -> None:
    """Installing the harness must not slow every pytest run of the user's venv: importing the plugin does not
    import the fakes, the stack or FastAPI."""
    probe = ("import sys, avito_harness.pytest_plugin; "
             "print(sorted(m for m in sys.modules if m.startswith(('avito_harness.stack', 'avito_harness.fakes', "
             "'fastapi', 'uvicorn'))))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stdout + done.stderr


def _without(module: str, argv: list[str]) -> subprocess.CompletedProcess[str]:
    """The command in a process where ``module`` cannot be imported (the extra that brings it not installed)."""
    code = (f"import sys; sys.modules[{module!r}] = None\n"
            f"from avito_harness.cli import main\nsys.exit(main({argv!r}))")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)


def test_contract_without_its_extra_names_the_extra() -> None:
    done = _without("schemathesis", ["contract", "--gateway-url", "http://127.0.0.1:9", "--gateway-api-key", "k"])
    assert done.returncode == 2 and "pip install 'avito-harness[contract]'" in done.stdout, done.stdout + done.stderr


def test_real_n8n_without_psycopg_names_the_extra() -> None:
    done = _without("psycopg", ["run", "--n8n", "real"])
    assert done.returncode == 2 and "pip install 'avito-harness[postgres]'" in done.stdout, done.stdout + done.stderr


def test_anonymizing_without_faker_names_the_extra(tmp_path: Path) -> None:
    done = _without("faker", ["record", "--out", str(tmp_path / "x.har"), "--anonymize"])
    assert done.returncode == 2 and "pip install 'avito-harness[record]'" in done.stdout, done.stdout + done.stderr
    assert not (tmp_path / "x.har").exists()
