"""Project rules a reader relies on: package boundaries, clock discipline, public names, settings."""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

import pytest

import avito_gateway
import avito_harness
from avito_harness.fakes.settings import SettingsError, SimSettings

ROOT = Path(__file__).resolve().parents[2]
BANNED_CALLS = {("time", "time"), ("time", "sleep"), ("datetime", "now"), ("datetime", "utcnow")}


def _modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize(("package", "forbidden"), [("simulator", "avito_gateway"), ("gateway", "avito_harness")])
def test_simulator_and_gateway_never_import_each_other(package: str, forbidden: str) -> None:
    for path in _modules(package):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            assert not any(n == forbidden or n.startswith(forbidden + ".") for n in names), f"{path} imports {forbidden}"


def _banned_uses(tree: ast.AST) -> list[str]:
    """``time.time``/``time.sleep``/``datetime.now`` however the module was imported."""
    aliases: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name in ("time", "datetime"):
                    aliases[a.asname or a.name] = a.name
        elif isinstance(node, ast.ImportFrom) and node.module == "datetime":
            for a in node.names:
                if a.name == "datetime":
                    aliases[a.asname or a.name] = "datetime"
        elif isinstance(node, ast.ImportFrom) and node.module == "time":
            for a in node.names:
                if a.name in ("time", "sleep"):
                    aliases[a.asname or a.name] = f"time.{a.name}"
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases:
            if (aliases[node.value.id], node.attr) in BANNED_CALLS:
                found.append(f"{node.lineno}: {node.value.id}.{node.attr}")
        if isinstance(node, ast.Name) and aliases.get(node.id, "").startswith("time."):
            found.append(f"{node.lineno}: {node.id}")
    return found


def test_only_the_clock_reads_wall_time_or_sleeps() -> None:
    for path in _modules("simulator") + _modules("gateway"):
        if path.name == "clock.py":
            continue
        uses = _banned_uses(ast.parse(path.read_text(encoding="utf-8")))
        assert not uses, f"{path} reads wall time or sleeps outside clock.py: {uses}"


def test_the_wall_time_scan_catches_aliases() -> None:
    assert _banned_uses(ast.parse("import time as t\nt.sleep(1)"))
    assert _banned_uses(ast.parse("from datetime import datetime\ndatetime.now()"))
    assert not _banned_uses(ast.parse("import time as _perf\n_perf.perf_counter()"))


@pytest.mark.parametrize("package", [avito_harness, avito_gateway])
def test_every_public_module_declares_and_defines_its_all(package: object) -> None:
    for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):  # type: ignore[attr-defined]
        module = importlib.import_module(info.name)
        if info.ispkg or info.name.endswith(("pytest_plugin", "__main__")):
            continue
        exported = getattr(module, "__all__", None)
        assert exported is not None, f"{info.name} has no __all__"
        missing = [name for name in exported if not hasattr(module, name)]
        assert not missing, f"{info.name}.__all__ names missing objects: {missing}"


def test_settings_come_from_sim_variables_with_fake_loopback_defaults() -> None:
    default = SimSettings.from_env({})
    assert default.host == "127.0.0.1" and default.avito_client_secret.startswith("sim-")
    custom = SimSettings.from_env({"SIM_AVITO_PORT": "0", "SIM_WEBHOOK_ALLOWED_HOSTS": "gateway, 127.0.0.1"})
    assert custom.avito_port == 0 and custom.webhook_allowed_hosts == ("gateway", "127.0.0.1")


def test_bad_settings_name_the_variable() -> None:
    with pytest.raises(SettingsError, match="SIM_AVITO_PORT"):
        SimSettings.from_env({"SIM_AVITO_PORT": "eighty"})
