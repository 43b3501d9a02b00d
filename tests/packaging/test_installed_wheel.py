"""The harness as a user installs it: a wheel in a fresh environment, used from a folder outside this repo.

The wheel is built from this checkout and installed into a new virtual environment whose only link to
.venv is its third-party packages (a ``.pth`` line: no install step from the network; .venv's own
avito-harness is an editable link that a plain path entry does not activate). Every command then runs
with that environment's Python from an empty temporary folder: nothing may come from the source tree.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration
pytest_plugins = ["pytester"]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh venv with the freshly built wheel installed; yields its bin directory."""
    base = tmp_path_factory.mktemp("wheel")
    wheels = _wheels(base / "dist")
    env_dir = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)], check=True)
    python = env_dir / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    (site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n", encoding="utf-8")
    subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "--ignore-installed", "--no-index", "-q",
                    *map(str, wheels.values())], check=True, capture_output=True, cwd=base)
    yield env_dir / "bin"


def _wheels(into: Path) -> dict[str, Path]:
    """The repository's two distributions, built from a clean copy of this checkout (a build/ folder left in the
    tree, or another worker's build, never leaks into them): the harness and the gateway."""
    import shutil

    tree = into.parent / "source"
    shutil.copytree(ROOT, tree, ignore=shutil.ignore_patterns(".venv", "build", "*.egg-info", ".git", "__pycache__",
                                                              "tests", "bench", "node_modules", ".hypothesis"))
    for source in (tree, tree / "gateway"):
        subprocess.run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation", "-q",
                        "-w", str(into)], check=True, capture_output=True, cwd=into.parent)
    (harness,) = into.glob("avito_harness-*.whl")
    (gateway,) = into.glob("avito_gateway-*.whl")
    return {"avito-harness": harness, "avito-gateway": gateway}


def test_the_gateway_and_the_harness_are_two_distributions(tmp_path: Path) -> None:
    """A shop's gateway image installs the gateway alone: none of the harness's code, none of its test tools."""
    import zipfile

    wheels = _wheels(tmp_path / "dist")
    names = {dist: zipfile.ZipFile(path).namelist() for dist, path in wheels.items()}
    assert names["avito-gateway"] and all(n.startswith("avito_gateway") for n in names["avito-gateway"])
    assert not any(n.startswith("avito_gateway/") for n in names["avito-harness"])
    metadata = {dist: zipfile.ZipFile(path).read(next(n for n in names[dist] if n.endswith("METADATA"))).decode()
                for dist, path in wheels.items()}
    gateway_needs = {line.split(":", 1)[1].split(";")[0].strip().split("[")[0].split(">")[0].split("=")[0].lower()
                     for line in metadata["avito-gateway"].splitlines() if line.startswith("Requires-Dist:")}
    assert gateway_needs and not gateway_needs & {"pytest", "pytest-bdd", "schemathesis", "hypothesis", "faker",
                                                  "rich", "avito-harness"}
    assert "Requires-Dist: avito-gateway==0.1.0; extra == \"embedded\"" in metadata["avito-harness"]


def _run(bin_dir: Path, cwd: Path, *command: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    return subprocess.run(list(command), capture_output=True, text=True, timeout=timeout, cwd=cwd, env=env)


def test_the_installed_package_is_the_wheel_not_the_source_tree(installed: Path, tmp_path: Path) -> None:
    found = _run(installed, tmp_path, str(installed / "python"), "-c",
                 "import avito_harness, avito_gateway, avito_harness.paths as p;"
                 "print(avito_harness.__file__, avito_gateway.__file__, p.contracts_dir(), p.features_dir())")
    assert found.returncode == 0, found.stderr
    assert str(ROOT) not in found.stdout and found.stdout.count(str(installed.parent)) == 4, found.stdout
    version = _run(installed, tmp_path, str(installed / "avito-harness"), "--version")
    assert version.returncode == 0 and version.stdout.startswith("avito-harness ")


def test_the_acceptance_run_works_from_the_wheel_outside_the_repo(installed: Path, tmp_path: Path) -> None:
    result = _run(installed, tmp_path, str(installed / "avito-harness"), "run", "--stage", "1", "--junit", "run.xml")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    counts = re.search(r"(\d+) passed, 0 failed, 0 not judged of (\d+) selected", result.stdout)
    assert counts and counts[1] == counts[2] and int(counts[1]) >= 6, result.stdout[-2000:]
    assert (tmp_path / "run.xml").read_text().count("<testcase") == int(counts[1])


def test_every_command_starts_from_the_wheel(installed: Path, tmp_path: Path) -> None:
    steps = _run(installed, tmp_path, str(installed / "avito-harness"), "steps", "--markdown")
    assert steps.returncode == 0 and "the customer writes" in steps.stdout
    helped = _run(installed, tmp_path, str(installed / "python"), "-c", (  # one process: each parser, each import
        "import contextlib, io\nfrom avito_harness.cli import main\n"
        "for command in ('sim', 'contract', 'demo', 'serve', 'up', 'run', 'steps', 'init', 'record', 'replay', 'load', 'doubles'):\n"
        "    with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):\n"
        "        main([command, '--help'])\n"
        "import avito_harness.judge.run, avito_harness.judge.contract.runner, avito_harness.demo.app, avito_harness.stack\n"
        "import avito_harness.recording.proxy, avito_harness.load.run, avito_harness.real.n8n.rollout\n"
        "from importlib.resources import files\n"
        "assert files('avito_harness.load').joinpath('users', 'locustfile.py').is_file()\n"
        "print('ok')"))
    assert helped.returncode == 0 and helped.stdout.strip() == "ok", helped.stderr[-1000:]
    up = _run(installed, tmp_path, str(installed / "avito-harness"), "up", "--docker")
    assert up.returncode == 1 and "error:" in up.stdout  # no engine here, or no checkout to build from: said so
    page = _run(installed, tmp_path, str(installed / "python"), "-c",
                "from importlib.resources import files; print(len(files('avito_harness.demo').joinpath('page.html')"
                ".read_text()))")
    assert page.returncode == 0 and int(page.stdout) > 1000  # the demo page ships too


def test_the_planted_defect_gateways_run_from_the_wheel(installed: Path, tmp_path: Path) -> None:
    """The harness catching a bug in one command, as a newcomer runs it after `pip install`."""
    listed = _run(installed, tmp_path, str(installed / "avito-harness"), "doubles", "--json")
    assert listed.returncode == 0, listed.stdout[-2000:] + listed.stderr[-2000:]
    entries = {d["name"]: d for d in json.loads(listed.stdout)}
    assert len(entries) >= 40 and entries["token_basic"]["codes"] == ["token_basic_auth"]
    caught = _run(installed, tmp_path, str(installed / "avito-harness"), "run", "--gateway-double", "token_basic",
                  "--scenario", "Subscribing", "--json", "run.json")
    assert caught.returncode == 1, caught.stdout[-3000:] + caught.stderr[-2000:]
    report = json.loads((tmp_path / "run.json").read_text())
    assert [c["defect"] for c in report["root_causes"]] == ["token_basic_auth"]


def test_a_users_pytest_project_runs_its_own_feature_against_a_gateway_by_command(
        installed: Path, pytester: pytest.Pytester) -> None:
    """A project of the user's: its own feature in our step vocabulary, plain pytest, our gateway by command."""
    pytester.makeconftest('pytest_plugins = ["avito_harness.bdd.steps"]\n')
    pytester.makefile(".feature", mine="""
        Feature: My team's check
          Scenario: A customer's question reaches n8n, and our answer reaches the chat
            Given the gateway is subscribed to Avito webhooks
            When the customer writes "Есть AGM 70Ah?"
            Then n8n receives 1 normalized message
            And the message text is "Есть AGM 70Ah?"
            When n8n sends "Есть, приезжайте" through the gateway
            Then the customer's chat shows "Есть, приезжайте" once
        """)
    pytester.makepyfile(test_mine='from pytest_bdd import scenarios\n\nscenarios("mine.feature")\n')
    result = pytester.run(str(installed / "python"), "-m", "pytest", "-p", "no:cacheprovider", "-q",  # no path
                          f"--avito-gateway-cmd={installed / 'avito-gateway'}", timeout=240)  # given, as users do
    assert result.ret == 0, "\n".join(result.outlines[-40:] + result.errlines[-20:])
    result.stdout.fnmatch_lines(["*1 passed*"])
