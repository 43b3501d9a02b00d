"""Project rules a reader relies on: package boundaries, clock discipline, public names, settings."""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

import pytest

import avito_gateway
import avito_harness
from avito_harness.settings import SettingsError, SimSettings

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


# --- the gateway's own rules -------------------------------------------------------------------------------------

GATEWAY = ROOT / "gateway" / "avito_gateway"


def _gateway_sources() -> dict[str, str]:
    return {str(p.relative_to(GATEWAY)): p.read_text(encoding="utf-8") for p in sorted(GATEWAY.rglob("*.py"))}


def test_avito_paths_live_only_in_the_avito_client() -> None:
    """Every Avito call is a typed method of AvitoClient: no other module builds a /messenger/ path."""
    found = [name for name, text in _gateway_sources().items() if "/messenger/" in text and name != "avito_client.py"]
    assert found == []


def test_the_gateway_opens_http_clients_only_through_its_seam() -> None:
    """aiohttp in production, the tests' httpx transports in tests: one place (http.py) decides."""
    for name, text in _gateway_sources().items():
        if name != "http.py":
            assert "AsyncClient(" not in text and "ClientSession(" not in text, name


def test_the_gateway_reads_time_only_through_its_clock() -> None:
    """One clock: no module but clock.py imports ``time`` (monotonic included)."""
    for name, text in _gateway_sources().items():
        if name == "clock.py":
            continue
        tree = ast.parse(text)
        imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        imported |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        assert "time" not in imported, f"{name} imports time"


def test_only_the_routes_and_the_app_know_the_services_bag() -> None:
    """deps builds on inbound and outbox; they get what they use (no import circle back to deps)."""
    for name, text in _gateway_sources().items():
        if "avito_gateway.deps" in text:
            assert name.startswith("routes/") or name == "app.py", name


def test_no_gateway_module_is_over_500_lines() -> None:
    sizes = {name: text.count("\n") for name, text in _gateway_sources().items()}
    assert max(sizes.values()) <= 500, sorted(sizes.items(), key=lambda kv: -kv[1])[:3]


def test_every_gateway_error_fixes_its_status_and_code_in_its_class() -> None:
    """One class per wire error: constructing one takes a message (and details), never a status or a code."""
    import inspect

    from avito_gateway import errors

    classes = [c for c in vars(errors).values() if isinstance(c, type) and issubclass(c, errors.GatewayError)]
    for cls in classes:
        params = inspect.signature(cls).parameters
        if cls is errors.FrameworkHttpError:  # the web framework's own statuses, passed through
            continue
        assert "status" not in params and "code" not in params, cls.__name__
        assert 400 <= cls.status < 600 and cls.code, cls.__name__


def test_every_gateway_package_is_in_the_wheel() -> None:
    """pyproject lists packages by hand: a new subpackage missing there installs without its modules."""
    import tomllib

    listed = {p for p in tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
              if p.split(".")[0] == "avito_gateway"}
    on_disk = {".".join(("avito_gateway", *p.parent.relative_to(GATEWAY).parts)) for p in GATEWAY.rglob("__init__.py")}
    assert listed == on_disk
