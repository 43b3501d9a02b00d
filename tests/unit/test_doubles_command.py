"""``avito-harness doubles`` and ``run --gateway-double``: what a user sees when listing and picking a double."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from avito_doubles.catalogue import DOUBLES, VARIANTS

from avito_harness.cli import doubles_command, main
from avito_harness.cli.parser import build_parser
from avito_harness.judge.verdict import CannotJudge


def test_the_list_is_the_catalogue_with_a_command_that_runs_each(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["doubles", "--json"]) == 0
    listed = {d["name"]: d for d in json.loads(capsys.readouterr().out)}
    assert set(listed) == set(DOUBLES) | set(VARIANTS)
    for name, double in DOUBLES.items():
        assert listed[name]["codes"] == list(double.codes) and listed[name]["embedded"] == double.embedded
        assert listed[name]["quick_run"].startswith(f"avito-harness run --gateway-double {name} --scenario ")
    assert all(listed[name]["codes"] == [] for name in VARIANTS)  # a variant must pass


def test_the_table_names_each_double_and_how_to_run_one(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["doubles"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in DOUBLES) and "--gateway-double" in out


def _run_args(*words: str) -> tuple[object, object]:
    parser = build_parser()
    return parser.parse_args(["run", *words]), parser.parse_args(["run"])


def test_a_double_started_by_command_gets_its_options_unless_the_user_gave_them() -> None:
    args, defaults = _run_args("--gateway-double", "limiter_holds_forever")
    doubles_command.apply_double(args, defaults)  # type: ignore[arg-type]
    assert args.gateway_cmd.endswith("-m avito_doubles serve limiter_holds_forever --port {port}")  # type: ignore[attr-defined]
    assert args.request_timeout == 3.0  # type: ignore[attr-defined]  # its defect shows within 3 s
    args, defaults = _run_args("--gateway-double", "limiter_holds_forever", "--request-timeout", "5")
    doubles_command.apply_double(args, defaults)  # type: ignore[arg-type]
    assert args.request_timeout == 5.0  # type: ignore[attr-defined]


def test_a_double_only_the_virtual_clock_sees_runs_in_process() -> None:
    args, defaults = _run_args("--gateway-double", "idempotency_forgets_fast")
    doubles_command.apply_double(args, defaults)  # type: ignore[arg-type]
    assert args.gateway_app == "avito_doubles.embedded:idempotency_forgets_fast"  # type: ignore[attr-defined]
    assert args.gateway_cmd is None and args.profile == "full"  # type: ignore[attr-defined]


def test_the_embedded_factory_names_the_known_doubles_for_a_typo() -> None:
    import avito_doubles.embedded as embedded

    assert callable(embedded.token_basic)
    with pytest.raises(AttributeError, match="no double 'token_basi'; known: .*token_basic"):
        embedded.token_basi  # noqa: B018


@pytest.mark.parametrize(("words", "said"), [
    (("--gateway-double", "no_such_double"), "--gateway-double no_such_double: no such double"),
    (("--gateway-double", "token_basic", "--gateway-url", "http://127.0.0.1:9"), "drop --gateway-url"),
    (("--gateway-double", "token_basic", "--gateway-cmd", "x"), "drop --gateway-cmd"),
])
def test_a_wrong_pick_is_a_usage_error_in_one_line(words: tuple[str, ...], said: str,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", *words]) == 2
    out = capsys.readouterr().out
    assert "[usage_error]" in out and said in out and len(out.strip().splitlines()) == 1


def test_without_the_gateway_installed_the_extra_is_named(monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    real = doubles_command.importlib.util.find_spec
    monkeypatch.setattr(doubles_command.importlib.util, "find_spec",
                        lambda name, *a: None if name == "avito_gateway" else real(name, *a))
    assert main(["doubles"]) == 2
    assert "pip install 'avito-harness[embedded]'" in capsys.readouterr().out
    with pytest.raises(CannotJudge, match=r"avito-harness\[embedded\]"):
        doubles_command.catalogue()


def test_the_doubles_serve_as_a_module_of_the_installed_python() -> None:
    assert Path(sys.executable).exists()
    import avito_doubles.__main__ as entry

    with pytest.raises(SystemExit):
        entry.main(["serve", "no_such_double", "--port", "1"])  # argparse names the choices
