"""``avito-harness init --ci github|gitlab``: CI files for a user's repository that run the acceptance run.

The workflow installs this harness from the source the user names (``--install``: a wheel in the repository,
a git URL, ``.``; the harness is not on the public package index, and a bare name there could install someone
else's code), installs the user's gateway (``--gateway-install``), keeps pip's cache between runs, starts the
gateway by its command and runs the five stages with JUnit and JSON reports kept as artifacts. ``--docker``
also writes a ``docker-compose.test.yml`` for teams whose gateway ships as an image, and the workflow runs
it: the gateway's healthcheck gates the harness (``depends_on: service_healthy``), the harness container serves
the fakes on the compose network and runs the scenarios against the gateway container.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from avito_harness.fakes.settings import DEMO_API_KEY, DEMO_USER_ID, WEBHOOK_PATH

__all__ = ["CiOptions", "MissingInstall", "write_ci_files", "github_workflow", "gitlab_ci", "compose_file"]

REPORTS = "avito-acceptance"
#: GitHub actions pinned to a commit (a tag can be moved to other code); the release it is, as a comment.
ACTIONS = {
    "checkout": ("actions/checkout@11bd71901bbe5b1630ceea73d27597364c9af683", "v4.2.2"),
    "setup-python": ("actions/setup-python@0b93645e9fea7318ecaed2b359559ac225c90a2b", "v5.3.0"),
    "cache": ("actions/cache@1bd1e32a3bdc45362d1e726936510720a7c30a57", "v4.2.0"),
    "upload-artifact": ("actions/upload-artifact@ea165f8d65b6e75b540449e92b4886f43607fa02", "v4.6.2"),
}


@dataclass(frozen=True)
class CiOptions:
    ci: str  # github | gitlab
    gateway_cmd: str
    features: str | None = None
    docker: bool = False
    gateway_image: str = "my-gateway:latest"
    force: bool = False
    install: str | None = None  # what pip installs: a wheel path, a git URL, "." (required to write files)
    gateway_install: str | None = None  # how CI installs the user's gateway (a shell command)


class MissingInstall(ValueError):
    """``--install`` not given: the files would pip-install a name the public index does not hold."""


def _install_spec(options: CiOptions) -> str:
    if not options.install:
        raise MissingInstall("say what CI installs: --install ./wheels/avito_harness-X-py3-none-any.whl (a wheel "
                             "in your repository), --install 'git+https://your.git/avito-harness@TAG' or --install "
                             "'avito-harness==X' if your own index holds it; the harness is not on PyPI, and a bare "
                             "name there could install someone else's code")
    return options.install


def _run_command(options: CiOptions) -> str:
    parts = ["avito-harness run", f"--gateway-cmd {_quoted(options.gateway_cmd)}",
             f"--junit {REPORTS}.xml", f"--json {REPORTS}.json", f"--html {REPORTS}.html"]
    if options.features:
        parts.append(f"--features {_quoted(options.features)}")
    return " ".join(parts)


def _quoted(text: str) -> str:
    return "'" + text.replace("'", "'\"'\"'") + "'"


def github_workflow(options: CiOptions) -> str:
    install = [{"name": "Install your gateway", "run": options.gateway_install}] if options.gateway_install else []
    cache = {"name": "Keep pip's downloads between runs", "uses": ACTIONS["cache"][0],
             "with": {"path": "~/.cache/pip", "key": "pip-${{ runner.os }}-${{ hashFiles('**/pyproject.toml', "
                                                      "'**/requirements*.txt', '.github/workflows/avito-acceptance.yml') }}",
                      "restore-keys": "pip-${{ runner.os }}-"}}
    if options.docker:
        run = [{"name": "Five-stage acceptance run against the gateway image",
                "run": "docker compose -f docker-compose.test.yml up --exit-code-from harness --abort-on-container-exit"}]
    else:
        run = [{"name": "Install the Avito harness", "run": f"python -m pip install '{_install_spec(options)}'"},
               *install, {"name": "Five-stage acceptance run against our gateway", "run": _run_command(options)}]
    doc = {
        "name": "Avito acceptance",
        "on": {"push": None, "pull_request": None, "workflow_dispatch": None},
        "jobs": {"avito-acceptance": {
            "runs-on": "ubuntu-24.04",
            "timeout-minutes": 20,
            "steps": [
                {"uses": ACTIONS["checkout"][0]},
                {"uses": ACTIONS["setup-python"][0], "with": {"python-version": "3.11"}},
                cache, *run,
                {"name": "Keep the reports", "if": "always()", "uses": ACTIONS["upload-artifact"][0],
                 "with": {"name": REPORTS, "path": f"{REPORTS}.*"}},
            ],
        }},
    }
    text = yaml.safe_dump(doc, sort_keys=False, allow_unicode=True).replace("'on':", "on:")
    for pinned, release in ACTIONS.values():
        text = text.replace(f"uses: {pinned}\n", f"uses: {pinned}  # {release}\n")
    return "# Written by `avito-harness init --ci github`; adjust the gateway command to your repository.\n" + text


def gitlab_ci(options: CiOptions) -> str:
    doc = {
        "avito-acceptance": {
            "image": "python:3.11-slim",
            "stage": "test",
            "variables": {"PIP_CACHE_DIR": "$CI_PROJECT_DIR/.cache/pip"},
            "cache": {"key": "pip", "paths": [".cache/pip"]},
            "script": [f"python -m pip install '{_install_spec(options)}'",
                       *([options.gateway_install] if options.gateway_install else []), _run_command(options)],
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
                "depends_on": {"gateway": {"condition": "service_healthy"}},
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
                "healthcheck": {"test": ["CMD", "python", "-c", "import urllib.request; "
                                         "urllib.request.urlopen('http://127.0.0.1:8765/health', timeout=3)"],
                                "interval": "2s", "timeout": "5s", "retries": 30},
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
    _install_spec(options)  # nothing is written without a source to install from
    existing = [p for p in files if p.exists()]
    if existing and not options.force:
        raise FileExistsError(", ".join(str(p) for p in existing))
    for path, render in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render(options), encoding="utf-8")
    return list(files)
