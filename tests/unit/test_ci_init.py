"""`avito-harness init`: CI files that validate against the CI services' published schemas and run our gateway."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from avito_harness.cli import main

SCHEMAS = {".github/workflows/avito-acceptance.yml": "vendor.github-workflows", ".gitlab-ci.yml": "vendor.gitlab-ci",
           "docker-compose.test.yml": "vendor.compose-spec"}


def _valid(path: Path, schema: str) -> None:
    checked = subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", schema, str(path)],
                             capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr


@pytest.mark.parametrize(("ci", "written"), [("github", ".github/workflows/avito-acceptance.yml"),
                                              ("gitlab", ".gitlab-ci.yml")])
def test_init_writes_ci_files_that_validate_and_run_the_gateway(tmp_path: Path, ci: str, written: str) -> None:
    code = main(["init", "--ci", ci, "--dir", str(tmp_path), "--features", "acceptance/features",
                 "--gateway-cmd", "python -m my_gateway --port {port}", "--install", "avito-harness @ file:///w.whl"])
    assert code == 0
    _valid(tmp_path / written, SCHEMAS[written])
    text = (tmp_path / written).read_text()
    assert "avito-harness run --gateway-cmd 'python -m my_gateway --port {port}'" in " ".join(text.split())
    assert "--junit avito-acceptance.xml" in " ".join(text.split()) and "--features 'acceptance/features'" in text
    assert "avito-harness @ file:///w.whl" in text


def test_init_never_overwrites_without_force(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = ["--install", "./wheels/avito_harness.whl"]
    assert main(["init", "--ci", "gitlab", "--dir", str(tmp_path), *source]) == 0
    (tmp_path / ".gitlab-ci.yml").write_text("mine: {script: [true]}\n")
    assert main(["init", "--ci", "gitlab", "--dir", str(tmp_path), *source]) == 2
    assert "already there" in capsys.readouterr().out and "mine" in (tmp_path / ".gitlab-ci.yml").read_text()
    assert main(["init", "--ci", "gitlab", "--dir", str(tmp_path), "--force", *source]) == 0
    assert "avito-acceptance" in (tmp_path / ".gitlab-ci.yml").read_text()


def test_init_without_an_install_source_writes_nothing_and_says_why(tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """A bare ``avito-harness==X`` would fail on the public index (or install someone else's package there)."""
    assert main(["init", "--ci", "github", "--dir", str(tmp_path)]) == 2
    said = capsys.readouterr().out
    assert "say what CI installs: --install" in said and "not on PyPI" in said
    assert list(tmp_path.iterdir()) == []


def test_the_workflow_installs_the_gateway_caches_pip_and_with_docker_runs_the_compose_file(tmp_path: Path) -> None:
    assert main(["init", "--ci", "github", "--dir", str(tmp_path), "--install", ".", "--gateway-install",
                 "python -m pip install ./gateway"]) == 0
    steps = yaml.safe_load((tmp_path / ".github/workflows/avito-acceptance.yml").read_text())["jobs"][
        "avito-acceptance"]["steps"]
    runs = [s.get("run", "") for s in steps]
    assert runs.index("python -m pip install ./gateway") < next(i for i, r in enumerate(runs) if "avito-harness run" in r)
    assert any(s.get("uses", "").startswith("actions/cache@") and "~/.cache/pip" in s["with"]["path"] for s in steps)
    docker = tmp_path / "docker"
    assert main(["init", "--ci", "github", "--docker", "--dir", str(docker), "--install", "."]) == 0
    text = (docker / ".github/workflows/avito-acceptance.yml").read_text()
    assert "docker compose -f docker-compose.test.yml up --exit-code-from harness" in text
    compose = yaml.safe_load((docker / "docker-compose.test.yml").read_text())["services"]
    assert compose["gateway"]["environment"]["AVITO_API_BASE_URL"] == "http://harness:8080"
    assert compose["harness"]["depends_on"] == {"gateway": {"condition": "service_healthy"}}
    assert "/health" in " ".join(compose["gateway"]["healthcheck"]["test"])
    _valid(docker / ".github/workflows/avito-acceptance.yml", SCHEMAS[".github/workflows/avito-acceptance.yml"])
    _valid(docker / "docker-compose.test.yml", SCHEMAS["docker-compose.test.yml"])
