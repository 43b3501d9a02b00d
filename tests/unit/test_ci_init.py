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
    code = main(["init", "--ci", ci, "--docker", "--dir", str(tmp_path), "--features", "acceptance/features",
                 "--gateway-cmd", "python -m my_gateway --port {port}", "--install", "avito-harness @ file:///w.whl"])
    assert code == 0
    for name in (written, "docker-compose.test.yml"):
        _valid(tmp_path / name, SCHEMAS[name])
    text = (tmp_path / written).read_text()
    assert "avito-harness run --gateway-cmd 'python -m my_gateway --port {port}'" in " ".join(text.split())
    assert "--junit avito-acceptance.xml" in " ".join(text.split()) and "--features 'acceptance/features'" in text
    assert "avito-harness @ file:///w.whl" in text
    compose = yaml.safe_load((tmp_path / "docker-compose.test.yml").read_text())
    assert compose["services"]["gateway"]["environment"]["AVITO_API_BASE_URL"] == "http://harness:8080"


def test_init_never_overwrites_without_force(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["init", "--ci", "gitlab", "--dir", str(tmp_path)]) == 0
    (tmp_path / ".gitlab-ci.yml").write_text("mine: {script: [true]}\n")
    assert main(["init", "--ci", "gitlab", "--dir", str(tmp_path)]) == 2
    assert "already there" in capsys.readouterr().out and "mine" in (tmp_path / ".gitlab-ci.yml").read_text()
    assert main(["init", "--ci", "gitlab", "--dir", str(tmp_path), "--force"]) == 0
    assert "avito-acceptance" in (tmp_path / ".gitlab-ci.yml").read_text()
