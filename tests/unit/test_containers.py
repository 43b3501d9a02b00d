"""Containers without an engine: the compose file, the Dockerfile and the CLI agree. With an engine: it runs."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from avito_gateway.settings import GatewaySettings
from avito_harness.cli import _parser
from avito_harness.docker_stack import COMPOSE_FILE, compose_services, docker_client
from avito_harness.realn8n.mapping import CREDENTIALS
from avito_harness.settings import SimSettings

ROOT = Path(__file__).resolve().parents[2]
SERVICES = compose_services(ROOT / COMPOSE_FILE)


REAL_N8N = {"postgres", "n8n-real"}  # profile real-n8n


def test_compose_file_has_the_whole_stack_and_a_one_shot_acceptance_run() -> None:
    assert set(SERVICES) == {"avito", "n8n", "stt", "gateway", "acceptance"} | REAL_N8N
    assert all(SERVICES[name].get("profiles") == ["real-n8n"] for name in REAL_N8N)
    assert not any(SERVICES[name].get("profiles") for name in set(SERVICES) - REAL_N8N)
    acceptance = SERVICES["acceptance"]
    assert {s for s, c in acceptance["depends_on"].items() if c["condition"] == "service_healthy"} == {
        "avito", "n8n", "stt", "gateway"}
    assert "ports" not in acceptance  # nothing to publish: it runs and exits
    for name in ("avito", "n8n", "stt", "gateway"):
        assert SERVICES[name]["healthcheck"]["test"][0] == "CMD"
    assert SERVICES["gateway"]["image"] == "avito-harness:local"  # ${GATEWAY_IMAGE:-...}, resolved as compose does
    assert compose_services(ROOT / COMPOSE_FILE, {"GATEWAY_IMAGE": "my/gw:1"})["gateway"]["image"] == "my/gw:1"


def test_the_real_n8n_profile_pins_its_images_and_imports_our_workflows() -> None:
    """n8n (the pinned official image) and Postgres; the fake n8n forwards to n8n when the env file says so."""
    assert SERVICES["n8n-real"]["image"].endswith("n8nio/n8n:2.8.4")
    assert re.fullmatch(r"postgres:\d+\.\d+-alpine", SERVICES["postgres"]["image"])
    assert "./workflows:/harness/workflows:ro" in SERVICES["n8n-real"]["volumes"]
    script = SERVICES["n8n-real"]["command"][0]
    assert script.index("import:credentials") < script.index("import:workflow") < script.index("publish:workflow") \
        < script.index("n8n start")
    assert SERVICES["n8n-real"]["environment"]["N8N_RUNNERS_BROKER_PORT"] != "5678"
    env_file = dict(line.split("=", 1) for line in (ROOT / "docker-compose.real-n8n.env").read_text().splitlines()
                    if line and not line.startswith("#"))
    assert env_file["COMPOSE_PROFILES"] == "real-n8n"
    tap = compose_services(ROOT / COMPOSE_FILE, env_file)["n8n"]["environment"]
    settings = SimSettings.from_env({k: str(v) for k, v in tap.items()})
    assert settings.n8n_upstream == "http://n8n-real:5678" and settings.crm_url and "@postgres:5432/" in settings.crm_url
    credentials = yaml.safe_load(ROOT.joinpath(COMPOSE_FILE).read_text())["configs"]["n8n-credentials"]["content"]
    assert {(c["id"], c["name"]) for c in json.loads(credentials)} == set(CREDENTIALS.values())


@pytest.mark.parametrize("name", ["avito", "n8n", "stt", "acceptance"])
def test_every_harness_command_exists_in_the_cli(name: str) -> None:
    command = SERVICES[name]["command"]
    assert command[0] == "avito-harness"
    _parser().parse_args(command[1:])  # argparse exits on an unknown command or option


def test_the_gateway_service_is_configured_with_the_deployments_names() -> None:
    env = SERVICES["gateway"]["environment"]
    known = {name.upper() for name in GatewaySettings.model_fields}
    assert set(env) <= known, f"unknown to the gateway: {set(env) - known}"
    assert {"AVITO_API_BASE_URL", "AVITO_CLIENT_ID", "AVITO_CLIENT_SECRET", "AVITO_USER_ID", "N8N_WEBHOOK_URL",
            "API_KEY", "SERVER_HOST", "SERVER_PORT"} <= set(env)
    assert env["AVITO_API_BASE_URL"] == "http://avito:8080" and env["N8N_WEBHOOK_URL"] == "http://n8n:5678/webhook/avito"


@pytest.mark.parametrize("name", ["avito", "n8n", "stt"])
def test_fake_env_ports_and_healthchecks_agree_with_the_settings(name: str) -> None:
    spec: dict[str, Any] = SERVICES[name]
    known = {f"SIM_{field.upper()}" for field in SimSettings.model_fields}
    env = {k: str(v) for k, v in spec["environment"].items()}
    assert set(env) <= known, f"unknown SIM_ variables: {set(env) - known}"
    SimSettings.from_env(env)  # the values are valid too
    port = int(spec["command"][spec["command"].index("--port") + 1])
    assert spec["ports"] == [f"127.0.0.1:{port}:{port}"]
    assert f"127.0.0.1:{port}/" in spec["healthcheck"]["test"][-1]
    assert port == getattr(SimSettings(), f"{name}_port")  # the same default ports as the in-process mode


def test_the_acceptance_service_points_at_the_services_it_waits_for() -> None:
    command = " ".join(SERVICES["acceptance"]["command"])
    assert "--gateway-url http://gateway:8765" in command
    assert "avito=http://avito:8080,n8n=http://n8n:5678,stt=http://stt:8090" in command
    webhook_hosts = SERVICES["avito"]["environment"]["SIM_WEBHOOK_ALLOWED_HOSTS"].split(",")
    assert "gateway" in webhook_hosts


def test_dockerfile_is_multi_stage_non_root_and_installs_the_package_with_its_data() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert len(re.findall(r"^FROM ", dockerfile, re.M)) >= 2
    assert re.search(r"^USER harness", dockerfile, re.M) and "useradd" in dockerfile
    build = dockerfile.split("\nFROM ")[1]  # the first stage
    for path in ("simulator", "gateway", "contracts", "features", "workflows"):  # what the package is built from
        assert f"COPY {path} {path}" in build
    assert "pip install --no-cache-dir ." in build
    assert "COPY tests" not in dockerfile and "AVITO_HARNESS_CONTRACTS" not in dockerfile  # nothing read from a tree


def test_compose_yaml_is_plain_yaml_with_anchors_resolved() -> None:
    doc = yaml.safe_load((ROOT / COMPOSE_FILE).read_text())
    assert doc["services"]["stt"]["image"] == "avito-harness:local"


def test_up_brings_the_stack_up_and_down_with_an_engine() -> None:
    try:
        docker_client()
    except RuntimeError as exc:
        pytest.skip(f"no Docker engine here: {exc}")
    import httpx
    from rich.console import Console

    from avito_harness.docker_stack import down, up

    console = Console()
    try:
        urls = up(console, build=True)  # the image of this tree, never a cached one
        assert httpx.get(f"{urls['gateway']}/health").json()["status"] == "healthy"
        assert httpx.get(f"{urls['avito']}/_sim/health").status_code == 200
    finally:
        down(console)
