"""Containers without an engine: the compose file, the Dockerfile and the CLI agree. With an engine: it runs."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from avito_gateway.settings import GatewaySettings
from avito_harness.cli.parser import build_parser
from avito_harness.fakes.settings import SimSettings
from avito_harness.real.n8n.mapping import CREDENTIALS
from avito_harness.stack.containers import COMPOSE_FILE, compose_services, docker_client

ROOT = Path(__file__).resolve().parents[2]
SERVICES = compose_services(ROOT / COMPOSE_FILE)


REAL_N8N = {"postgres", "n8n-real"}  # profile real-n8n
REPLICAS = {"postgres", "gateway-1", "gateway-2", "gateway-3", "gateway-lb"}  # profile replicas


def _env_file(name: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in (ROOT / name).read_text().splitlines()
                if line and not line.startswith("#"))


def test_compose_file_has_the_whole_stack_and_a_one_shot_acceptance_run() -> None:
    assert set(SERVICES) == {"avito", "n8n", "stt", "gateway", "acceptance"} | REAL_N8N | REPLICAS
    for name in REAL_N8N | REPLICAS:
        assert set(SERVICES[name]["profiles"]) == {p for p, group in (("real-n8n", REAL_N8N), ("replicas", REPLICAS))
                                                   if name in group}
    assert not any(SERVICES[name].get("profiles") for name in set(SERVICES) - REAL_N8N - REPLICAS)
    acceptance = SERVICES["acceptance"]
    required = {s for s, c in acceptance["depends_on"].items() if c["condition"] == "service_healthy"
                and c.get("required", True)}
    assert required == {"avito", "n8n", "stt", "gateway"}
    assert acceptance["depends_on"]["gateway-lb"] == {"condition": "service_healthy", "required": False}
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
    env_file = _env_file("docker-compose.real-n8n.env")
    assert env_file["COMPOSE_PROFILES"] == "real-n8n"
    tap = compose_services(ROOT / COMPOSE_FILE, env_file)["n8n"]["environment"]
    settings = SimSettings.from_env({k: str(v) for k, v in tap.items()})
    assert settings.n8n_upstream == "http://n8n-real:5678" and settings.crm_url and "@postgres:5432/" in settings.crm_url
    credentials = yaml.safe_load(ROOT.joinpath(COMPOSE_FILE).read_text())["configs"]["n8n-credentials"]["content"]
    assert {(c["id"], c["name"]) for c in json.loads(credentials)} == \
        {CREDENTIALS[role] for role in ("postgres", "gateway_api_key", "speech_to_text")}


def test_the_replicas_profile_runs_three_gateways_on_one_postgres_behind_nginx() -> None:
    """Every replica is the gateway service plus a shared store: the same Postgres (with the credentials the
    postgres service creates), the same webhook secret, its own REPLICA_ID; nginx balances over exactly them."""
    replicas = [SERVICES[f"gateway-{n}"] for n in (1, 2, 3)]
    known = {name.upper() for name in GatewaySettings.model_fields}
    pg = SERVICES["postgres"]["environment"]
    expected_url = f"postgresql://{pg['POSTGRES_USER']}:{pg['POSTGRES_PASSWORD']}@postgres:5432/{pg['POSTGRES_DB']}"
    for n, replica in enumerate(replicas, 1):
        env = {k: str(v) for k, v in replica["environment"].items()}
        assert set(env) <= known, f"unknown to the gateway: {set(env) - known}"
        assert {k: v for k, v in env.items() if k not in {"DATABASE_URL", "REPLICA_ID", "WEBHOOK_SECRET",
                "PUBLIC_WEBHOOK_URL"}} == {k: str(v) for k, v in SERVICES["gateway"]["environment"].items()}
        settings = GatewaySettings(**{k.lower(): v for k, v in env.items()})  # valid as a whole, DATABASE_URL too
        assert settings.database_url == expected_url and settings.replica_id == f"gateway-{n}"
        assert env["PUBLIC_WEBHOOK_URL"] == "http://gateway-lb:8765/webhook/avito"
        assert replica["depends_on"]["postgres"] == {"condition": "service_healthy"}
        assert replica["ports"] == [] and replica["command"] == ["avito-gateway"]  # reached only through nginx
    assert len({r["environment"]["WEBHOOK_SECRET"] for r in replicas}) == 1  # Avito's deliveries fit any replica
    assert len({r["environment"]["REPLICA_ID"] for r in replicas}) == 3

    lb = SERVICES["gateway-lb"]
    assert re.fullmatch(r"nginx:\d+\.\d+\.\d+-alpine", lb["image"])
    assert set(lb["depends_on"]) == {"gateway-1", "gateway-2", "gateway-3"}
    config = yaml.safe_load(ROOT.joinpath(COMPOSE_FILE).read_text())["configs"]["gateway-lb"]["content"]
    upstream = re.findall(r"server (gateway-\d):(\d+)", config)
    assert upstream == [(f"gateway-{n}", "8765") for n in (1, 2, 3)]
    assert re.search(r"listen (\d+);", config).group(1) == lb["ports"][0].rsplit(":", 1)[1] == "8765"  # type: ignore[union-attr]
    assert "non_idempotent" not in config  # a send that reached one replica is never posted again by another
    # only an unreachable replica passes a request on: a replica's own 502/504 (Avito failed) is the answer, not
    # a reason to ask another replica (which would hide the error the acceptance run checks for)
    assert re.search(r"proxy_next_upstream ([^;]*);", config).group(1) == "error"  # type: ignore[union-attr]
    # compose interpolates $name in configs: nginx's variables must be written $$name
    assert not re.search(r"(?<!\$)\$(?!\$)\w", config), "an nginx $variable compose would replace"


def test_the_replicas_env_file_points_the_run_and_n8n_at_the_balancer() -> None:
    env_file = _env_file("docker-compose.replicas.env")
    assert env_file["COMPOSE_PROFILES"] == "replicas"
    services = compose_services(ROOT / COMPOSE_FILE, env_file)
    assert "--gateway-url http://gateway-lb:8765" in " ".join(services["acceptance"]["command"])
    assert services["n8n"]["environment"]["SIM_GATEWAY_URL"] == "http://gateway-lb:8765"
    assert "gateway-lb" in services["avito"]["environment"]["SIM_WEBHOOK_ALLOWED_HOSTS"].split(",")
    build_parser().parse_args(services["acceptance"]["command"][1:])


@pytest.mark.parametrize("name", ["avito", "n8n", "stt", "acceptance"])
def test_every_harness_command_exists_in_the_cli(name: str) -> None:
    command = SERVICES[name]["command"]
    assert command[0] == "avito-harness"
    build_parser().parse_args(command[1:])  # argparse exits on an unknown command or option


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
    assert "pip install --no-cache-dir ./gateway ." in build  # both distributions
    assert "COPY tests" not in dockerfile and "AVITO_HARNESS_CONTRACTS" not in dockerfile  # nothing read from a tree


def test_the_gateways_own_image_installs_the_gateway_alone() -> None:
    dockerfile = (ROOT / "gateway" / "Dockerfile").read_text()
    copied = re.findall(r"^COPY (?!--from)(\S+)", dockerfile, re.M)
    assert copied == ["pyproject.toml", "avito_gateway"]  # its build context is gateway/: nothing of the harness
    assert "pip install --no-cache-dir ." in dockerfile and re.search(r"^USER gateway", dockerfile, re.M)
    assert 'CMD ["avito-gateway"]' in dockerfile and "/health" in dockerfile


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

    from avito_harness.stack.containers import down, up

    console = Console()
    try:
        urls = up(console, build=True)  # the image of this tree, never a cached one
        assert httpx.get(f"{urls['gateway']}/health").json()["status"] == "healthy"
        assert httpx.get(f"{urls['avito']}/_sim/health").status_code == 200
    finally:
        down(console)
