"""`avito-harness n8n install`: the pinned n8n into the cache once, or a clear reason why not (no network here)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from avito_harness.cli import main
from avito_harness.real.n8n import install
from avito_harness.real.n8n.install import N8N_VERSION, InstallError, N8nInstall


def test_the_manifest_pins_n8n_and_overrides_xlsx_to_the_registrys() -> None:
    manifest = install.package_manifest()
    assert manifest["dependencies"] == {"n8n": "2.8.4"} and N8N_VERSION == "2.8.4"
    assert manifest["overrides"] == {"xlsx": "0.18.5"}


def test_the_cache_follows_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AVITO_HARNESS_CACHE", str(tmp_path / "c"))
    assert N8nInstall.default().root == tmp_path / "c" / f"n8n-{N8N_VERSION}"
    monkeypatch.delenv("AVITO_HARNESS_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert install.cache_dir() == tmp_path / "xdg" / "avito-harness"


def test_an_existing_install_is_found_without_npm(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    target = N8nInstall(tmp_path / "n8n")
    (target.root / "node_modules" / "n8n").mkdir(parents=True)
    (target.root / "node_modules" / "n8n" / "package.json").write_text(json.dumps({"version": N8N_VERSION}))
    target.executable.parent.mkdir(parents=True)
    target.executable.write_text("#!/bin/sh\n")
    monkeypatch.setattr(install.shutil, "which", lambda name: None)  # neither node nor npm needed
    assert target.ensure() is False


def test_an_old_node_is_refused_naming_both_versions(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(install, "node_version", lambda: (18, 20))
    with pytest.raises(InstallError, match=r"needs Node.js >= 20.19 \(node 18.20\)"):
        N8nInstall(tmp_path / "n8n").ensure()
    monkeypatch.setenv("AVITO_HARNESS_CACHE", str(tmp_path / "cache"))
    assert main(["n8n", "install"]) == 1
    assert "needs Node.js >= 20.19" in capsys.readouterr().out


def test_make_tests_install_steps_aside_without_a_usable_node(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(install, "node_version", lambda: None)
    monkeypatch.setenv("AVITO_HARNESS_CACHE", str(tmp_path / "cache"))
    assert main(["n8n", "install", "--if-node"]) == 0
    assert "needs Node.js >= 20.19 (here: none); the real-n8n tests will be skipped" in capsys.readouterr().out
    assert not (tmp_path / "cache").exists()


def _fake_npm(monkeypatch: pytest.MonkeyPatch, target: N8nInstall) -> list[Path]:
    """npm that 'installs' by writing the package files, so ensure() runs its whole path offline."""
    ran: list[Path] = []

    def run(args: list[str], cwd: Path, **_: object) -> object:
        ran.append(Path(cwd))
        (target.root / "node_modules" / "n8n").mkdir(parents=True)
        (target.root / "node_modules" / "n8n" / "package.json").write_text(json.dumps({"version": N8N_VERSION}))
        target.executable.parent.mkdir(parents=True, exist_ok=True)
        target.executable.write_text("#!/bin/sh\n")
        return type("Done", (), {"returncode": 0})()

    monkeypatch.setattr(install, "node_version", lambda: (20, 19))
    monkeypatch.setattr(install.shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(install.subprocess, "run", run)
    return ran


def test_a_cache_link_whose_target_is_gone_is_replaced(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    target = N8nInstall(tmp_path / "cache" / "n8n")
    target.root.parent.mkdir()
    target.root.symlink_to(tmp_path / "wiped")  # the cache pointed at a directory that was removed
    ran = _fake_npm(monkeypatch, target)
    assert target.ensure() is True
    assert ran == [target.root] and target.root.is_dir() and not target.root.is_symlink()
    assert target.installed_version() == N8N_VERSION


def test_a_file_in_the_caches_place_is_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    target = N8nInstall(tmp_path / "n8n")
    target.root.write_text("not a directory")
    _fake_npm(monkeypatch, target)
    with pytest.raises(InstallError, match="is in the way: it is not a directory"):
        target.ensure()


@pytest.mark.parametrize(("status", "text", "ready"), [
    (404, '{"message":"This webhook is not registered for GET requests. Did you mean to make a POST request?"}', True),
    (404, '{"message":"The requested webhook \\"GET probe\\" is not registered."}', False),
    (200, "n8n is starting up. Please wait", False),  # n8n 2.8.4's answer on every path while it migrates
    (503, '{"message":"Database is not ready!"}', False),  # earlier still
    (500, "Internal Server Error", False),
    (200, "ok", True),  # a webhook that answers GET itself
])
def test_n8n_counts_as_ready_only_once_the_webhook_is_registered(status: int, text: str, ready: bool) -> None:
    import httpx

    from avito_harness.real.n8n.server import _ready

    assert _ready(httpx.Response(status, text=text), webhook=True) is ready


@pytest.mark.parametrize(("status", "text", "ready"), [
    (200, '{"status":"ok"}', True),
    (200, "n8n is starting up. Please wait", False),
    (503, '{"status":"error"}', False),
])
def test_n8n_without_a_webhook_to_probe_is_ready_once_migrated(status: int, text: str, ready: bool) -> None:
    import httpx

    from avito_harness.real.n8n.server import _ready

    assert _ready(httpx.Response(status, text=text), webhook=False) is ready
