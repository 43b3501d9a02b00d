"""Project rules a reader relies on: package boundaries, clock discipline, public names, settings."""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

import avito_doubles
import pytest

import avito_gateway
import avito_harness
from avito_harness.fakes.settings import SettingsError, SimSettings
from avito_harness.judge.defects import CATALOGUE

ROOT = Path(__file__).resolve().parents[2]
BANNED_CALLS = {("time", "time"), ("time", "sleep"), ("datetime", "now"), ("datetime", "utcnow")}


def _modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize(("package", "forbidden"), [
    ("simulator", "avito_gateway"), ("simulator", "avito_doubles"),
    ("gateway", "avito_harness"), ("gateway/avito_gateway", "avito_doubles"),
])
def test_simulator_and_gateway_never_import_each_other(package: str, forbidden: str) -> None:
    """The harness and the gateway meet over HTTP; the planted-defect gateways are gateways (they import ours),
    started by the harness as a process or by name, never imported by it."""
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


@pytest.mark.parametrize("package", [avito_harness, avito_gateway, avito_doubles])
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


WAIT_HELPER = {"waiting.py", "clock.py"}  # the one way to wait in real time, and the virtual clock's scheduler


def _event_waits(tree: ast.AST) -> list[int]:
    """Lines that wait on a ``threading.Event`` themselves (a hand-made poll loop) instead of the wait helper."""
    events: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call) and _is_event(node.value):
            events |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "wait":
            target = node.func.value
            if (isinstance(target, ast.Call) and _is_event(target)) or (isinstance(target, ast.Name) and target.id in events):
                found.append(node.lineno)
    return found


def _is_event(call: ast.Call) -> bool:
    func = call.func
    return (isinstance(func, ast.Attribute) and func.attr == "Event") or (isinstance(func, ast.Name) and func.id == "Event")


def test_the_wait_helper_is_the_only_way_to_wait() -> None:
    """Every real-time wait goes through avito_harness.waiting (wait_until: by effect, bounded; pause)."""
    for path in _modules("simulator"):
        if path.name in WAIT_HELPER:
            continue
        lines = _event_waits(ast.parse(path.read_text(encoding="utf-8")))
        assert not lines, f"{path} waits by hand on lines {lines}: use avito_harness.waiting.wait_until or pause"


def test_the_wait_scan_catches_hand_made_polls() -> None:
    assert _event_waits(ast.parse("import threading\nthreading.Event().wait(0.1)"))
    assert _event_waits(ast.parse("from threading import Event\nw = Event()\nwhile True:\n    w.wait(1)"))
    assert not _event_waits(ast.parse("proc.wait(5)\nstop = threading.Event()\nstop.set()"))


PROSE = {"text", "hint", "error", "message", "summary", "detail", "description"}


def _is_prose_search(node: ast.AST) -> bool:
    """``"words" in x.text`` / ``in hint`` / ``in extra.get("error")``: a search for words in a message."""
    if not (isinstance(node, ast.Compare) and isinstance(node.left, ast.Constant) and isinstance(node.left.value, str)
            and any(isinstance(op, (ast.In, ast.NotIn)) for op in node.ops)):
        return False
    for right in node.comparators:
        if isinstance(right, ast.Attribute) and right.attr in PROSE or isinstance(right, ast.Name) and right.id in PROSE:
            return True
        if isinstance(right, ast.Subscript) and isinstance(right.slice, ast.Constant) and right.slice.value in PROSE:
            return True
        if (isinstance(right, ast.Call) and isinstance(right.func, ast.Attribute) and right.func.attr == "get"
                and right.args and isinstance(right.args[0], ast.Constant) and right.args[0].value in PROSE):
            return True
    return False


def _prose_reads(tree: ast.AST) -> list[int]:
    """Lines where a search for words in a message picks a defect code (an ``if`` or ``x if ... else y`` whose
    test searches words and whose branches name a code of the catalogue)."""
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, (ast.If, ast.IfExp)) or not any(_is_prose_search(n) for n in ast.walk(node.test)):
            continue
        branches = [node.body, node.orelse] if isinstance(node, ast.IfExp) else [*node.body, *node.orelse]
        codes = [n.value for b in branches for n in ast.walk(b) if isinstance(n, ast.Constant) and n.value in CATALOGUE]
        if codes:
            found.append(node.lineno)
    return found


def test_nothing_in_the_judge_reads_prose_to_decide_a_code() -> None:
    """Defect codes come from codes the fakes record (avito_harness.fakes.reasons) and from structured answers,
    never from the wording of a hint, an error or a message."""
    for path in _modules("simulator/avito_harness/judge"):
        lines = _prose_reads(ast.parse(path.read_text(encoding="utf-8")))
        assert not lines, f"{path} decides by words in a message on lines {lines}: record and read a code"


def test_the_prose_scan_catches_word_searches() -> None:
    assert _prose_reads(ast.parse('code = "probe_not_200" if "probe" in response.text else "unclassified"'))
    assert _prose_reads(ast.parse('if "HTTP Basic" in hint:\n    code = "token_basic_auth"'))
    assert _prose_reads(ast.parse('if "expired" in extra.get("hint", ""):\n    return Anomaly("token_request_refused")'))
    assert not _prose_reads(ast.parse('if reason == "probe_refused":\n    code = "probe_not_200"'))
    assert not _prose_reads(ast.parse('assert "404" in failed["error"]'))  # a check of SPEC's words is no code choice


@pytest.mark.parametrize("package", ["simulator", "gateway"])
def test_no_module_is_over_500_lines(package: str) -> None:
    long = {str(p.relative_to(ROOT)): n for p in _modules(package) if (n := len(p.read_text().splitlines())) > 500}
    assert not long, f"split these by what they hold: {long}"

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


@pytest.mark.parametrize(("name", "folder"), [("avito_gateway", GATEWAY), ("avito_harness", ROOT / "simulator" / "avito_harness"),
                                             ("avito_doubles", ROOT / "gateway" / "avito_doubles")])
def test_every_package_is_in_the_wheel(name: str, folder: Path) -> None:
    """pyproject lists packages by hand: a new subpackage missing there installs without its modules."""
    import tomllib

    project = ROOT / ("gateway" if name == "avito_gateway" else "") / "pyproject.toml"  # two distributions
    listed = {p for p in tomllib.loads(project.read_text())["tool"]["setuptools"]["packages"]
              if p.split(".")[0] == name and p.split(".")[1:2] not in (["contracts"], ["features"], ["workflows"])}
    on_disk = {".".join((name, *p.parent.relative_to(folder).parts)) for p in folder.rglob("__init__.py")}
    assert listed == on_disk
