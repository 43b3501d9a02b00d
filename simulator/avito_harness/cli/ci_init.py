"""``avito-harness init --ci github|gitlab``: CI files for a user's repository that run the acceptance run.

The workflow installs this harness (pinned to the running version), starts the user's gateway by its
command and runs the five stages with JUnit and JSON reports kept as artifacts. ``--docker`` also writes a
``docker-compose.test.yml`` for teams whose gateway ships as an image: the harness container serves the
fakes on the compose network and runs the scenarios against the gateway container.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import yaml

from avito_harness.fakes.settings import DEMO_API_KEY, DEMO_USER_ID, WEBHOOK_PATH

__all__ = ["CiOptions", "write_ci_files", "github_workflow", "gitlab_ci", "compose_file"]

REPORTS = "avito-acceptance"


@dataclass(frozen=True)
class CiOptions:
    ci: str  # github | gitlab
    gateway_cmd: str
    features: str | None = None
    docker: bool = False
    gateway_image: str = "my-gateway:latest"
    force: bool = False
    install: str | None = None  # what pip installs: a version pin (default), a wheel URL, a git URL ...


def _install_spec(options: CiOptions) -> str:
    if options.install:
        return options.install
    try:
        return f"avito-harness=={version('avito-harness')}"
    except PackageNotFoundError:  # pragma: no cover - a bare source tree
        return "avito-harness"


def _run_command(options: CiOptions) -> str:
    parts = ["avito-harness run", f"--gateway-cmd {_quoted(options.gateway_cmd)}",
             f"--junit {REPORTS}.xml", f"--json {REPORTS}.json", f"--html {REPORTS}.html"]
    if options.features:
        parts.append(f"--features {_quoted(options.features)}")
    return " ".join(parts)


def _quoted(text: str) -> str:
    return "'" + text.replace("'", "'\"'\"'") + "'"


def github_workflow(options: CiOptions) -> str:
    doc = {
        "name": "Avito acceptance",
        "on": {"push": None, "pull_request": None, "workflow_dispatch": None},
        "jobs": {"avito-acceptance": {
            "runs-on": "ubuntu-latest",
            "timeout-minutes": 20,
            "steps": [
                {"uses": "actions/checkout@v4"},
                {"uses": "actions/setup-python@v5", "with": {"python-version": "3.11"}},
                {"name": "Install the Avito harness", "run": f"python -m pip install '{_install_spec(options)}'"},
                {"name": "Five-stage acceptance run against our gateway", "run": _run_command(options)},
                {"name": "Keep the reports", "if": "always()", "uses": "actions/upload-artifact@v4",
                 "with": {"name": REPORTS, "path": f"{REPORTS}.*"}},
            ],
        }},
    }
    return "# Written by `avito-harness init --ci github`; adjust the gateway command to your repository.\n" + \
        yaml.safe_dump(doc, sort_keys=False, allow_unicode=True).replace("'on':", "on:")


def gitlab_ci(options: CiOptions) -> str:
    doc = {
        "avito-acceptance": {
            "image": "python:3.11-slim",
            "stage": "test",
            "script": [f"python -m pip install '{_install_spec(options)}'", _run_command(options)],
            "artifacts": {"when": "always", "paths": [f"{REPORTS}.json", f"{REPORTS}.html"],
                          "reports": {"junit": f"{REPORTS}.xml"}},
        },
    }
    return "# Written by `avito-harness init --ci gitlab`; adjust the gateway command to your repository.\n" + \
        yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)


def compose_file(options: CiOptions) -> str:
    """The harness (fakes + scenarios) and the user's gateway image on one network."""
    harness_env = {"SIM_HOST": "0.0.0.0", "SIM_WEBHOOK_ALLOWED_HOSTS": "gateway,127.0.0.1,localhost"}
    doc = {
        "services": {
            "harness": {
                "image": "python:3.11-slim",
                "working_dir": "/work",
                "volumes": [".:/work"],
                "environment": harness_env,
                "command": ["sh", "-c", f"python -m pip install -q '{_install_spec(options)}' && avito-harness run "
                            f"--gateway-url http://gateway:8765 --junit {REPORTS}.xml --json {REPORTS}.json"],
            },
            "gateway": {
                "image": options.gateway_image,
                "environment": {
                    "API_KEY": DEMO_API_KEY, "AVITO_CLIENT_ID": "sim-client-id",
                    "AVITO_CLIENT_SECRET": "sim-client-secret", "AVITO_USER_ID": str(DEMO_USER_ID),
                    "AVITO_API_BASE_URL": "http://harness:8080", "N8N_WEBHOOK_URL": f"http://harness:5678{WEBHOOK_PATH}",
                    "SERVER_HOST": "0.0.0.0", "SERVER_PORT": "8765",
                    "PUBLIC_WEBHOOK_URL": f"http://gateway:8765{WEBHOOK_PATH}",
                },
            },
        },
    }
    return "# Written by `avito-harness init --docker`: `docker compose -f docker-compose.test.yml up " \
           "--exit-code-from harness`\n" + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)


def write_ci_files(options: CiOptions, root: Path) -> list[Path]:
    """Write the files; refuses to overwrite (FileExistsError) unless ``force``."""
    if options.ci not in ("github", "gitlab"):
        raise ValueError("--ci must be github or gitlab")
    files = {root / ".github" / "workflows" / "avito-acceptance.yml": github_workflow} if options.ci == "github" \
        else {root / ".gitlab-ci.yml": gitlab_ci}
    if options.docker:
        files[root / "docker-compose.test.yml"] = compose_file
    existing = [p for p in files if p.exists()]
    if existing and not options.force:
        raise FileExistsError(", ".join(str(p) for p in existing))
    for path, render in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render(options), encoding="utf-8")
    return list(files)
