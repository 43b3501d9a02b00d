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
def wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The two wheels, built once for the module."""
    return _wheels(tmp_path_factory.mktemp("wheels") / "dist")


def _fresh_venv(env_dir: Path, *, with_pip: bool = False) -> Path:
    """A new venv whose third-party packages are .venv's (a .pth line: no download); returns its bin folder."""
    subprocess.run([sys.executable, "-m", "venv", *([] if with_pip else ["--without-pip"]), str(env_dir)], check=True)
    python = env_dir / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    (site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n", encoding="utf-8")
    return env_dir / "bin"


@pytest.fixture(scope="module")
def installed(wheels: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh venv with the freshly built wheels installed; yields its bin directory."""
    base = tmp_path_factory.mktemp("wheel")
    bin_dir = _fresh_venv(base / "venv")
    subprocess.run([str(bin_dir / "python"), "-m", "pip", "install", "--no-deps", "--ignore-installed", "--no-index",
                    "-q", *map(str, wheels.values())], check=True, capture_output=True, cwd=base)
    yield bin_dir


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


def test_the_gateway_and_the_harness_are_two_distributions(wheels: dict[str, Path]) -> None:
    """A shop's gateway image installs the gateway alone: none of the harness's code, none of its test tools."""
    import zipfile

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
    base = {line.split(":", 1)[1].strip().split(">")[0].split("[")[0].lower()
            for line in metadata["avito-harness"].splitlines() if line.startswith("Requires-Dist:") and "extra ==" not in line}
    # each of these brings a pytest plugin that every pytest run of the user's venv would load (bench/plugin_cost.py)
    assert base and not base & {"faker", "schemathesis", "hypothesis", "psycopg", "locust", "avito-gateway"}, base


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
        "assert files('avito_harness.load').joinpath('locust-users', 'locustfile.py').is_file()\n"
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


def test_the_ci_steps_init_writes_run_green_in_a_fresh_repository(wheels: dict[str, Path], tmp_path: Path) -> None:
    """`init --ci github` in a repository holding the wheels, then every `run:` step of the workflow, in order, as
    the runner runs them (bash -e, from the repository, a fresh Python with pip): the harness and the shop's gateway
    installed from the wheels, then the five stages against that gateway started by its command."""
    import shutil

    import yaml

    repo = tmp_path / "repo"
    (repo / "wheels").mkdir(parents=True)
    for wheel in wheels.values():
        shutil.copy(wheel, repo / "wheels")
    runner = _fresh_venv(tmp_path / "runner", with_pip=True)
    from avito_harness.cli import main

    assert main(["init", "--ci", "github", "--dir", str(repo), "--install", f"./wheels/{wheels['avito-harness'].name}",
                 "--gateway-cmd", "avito-gateway",
                 "--gateway-install", f"python -m pip install ./wheels/{wheels['avito-gateway'].name}"]) == 0
    steps = yaml.safe_load((repo / ".github/workflows/avito-acceptance.yml").read_text())["jobs"]["avito-acceptance"][
        "steps"]
    assert all(re.fullmatch(r"[\w-]+/[\w-]+@[0-9a-f]{40}", s["uses"]) for s in steps if "uses" in s)  # pinned
    runs = [s["run"] for s in steps if "run" in s]
    assert len(runs) == 3  # the harness, the gateway, the run
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(PATH=f"{runner}{os.pathsep}{env.get('PATH', '')}", CI="true",
               PIP_NO_INDEX="1", PIP_NO_DEPS="1")  # the runner's dependencies are there already (no network here)
    for command in runs:
        done = subprocess.run(["bash", "-e", "-c", command], cwd=repo, env=env, capture_output=True, text=True,
                              timeout=600)
        assert done.returncode == 0, f"{command}\n{done.stdout[-3000:]}{done.stderr[-2000:]}"
    report = json.loads((repo / "avito-acceptance.json").read_text())
    failed = [f"{s['name']}: {s['defect']} {s['error']}" for s in report["scenarios"] if s["outcome"] != "passed"]
    assert report["verdict"]["exit_code"] == 0 and failed == [], failed
    assert len(report["scenarios"]) >= 40 and str(ROOT) not in report["judged"]["gateway"]
    # every scenario but the virtual-clock ones, each listed as not applicable with its reason
    assert all(any(why in n["reason"] for why in ("virtual clock", "CONNECTION_TIMEOUT", "--profile full"))
               for n in report["not_applicable"])
    assert (repo / "avito-acceptance.xml").exists() and (repo / "avito-acceptance.html").exists()
