"""``avito-harness up --docker``: the stack of docker-compose.test.yml, brought up and down from Python.

The compose file is the one definition: this reads its services (image,
command, environment, published ports) and runs them with the Docker SDK on
one private network, so the URLs printed are the same as the in-process
mode's defaults.
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console
from rich.table import Table

from avito_harness.paths import contracts_dir
from avito_harness.stack.serve import wait_until_up

__all__ = ["COMPOSE_FILE", "IMAGE", "compose_services", "run_up", "docker_client"]

IMAGE = "avito-harness:local"
COMPOSE_FILE = "docker-compose.test.yml"
NETWORK = "avito-harness"
PREFIX = "avito-harness-"
SERVICES = ("avito", "n8n", "stt", "gateway")
HEALTH = {"avito": "/_sim/health", "n8n": "/_sim/health", "stt": "/_sim/health", "gateway": "/health"}


def root() -> Path:
    """The avito-harness checkout the image is built from: here, or the tree of an editable install.

    A wheel has no Dockerfile: from one, ``up --docker`` says so (the containers are a checkout's feature;
    ``avito-harness init --docker`` writes a compose file that installs the wheel instead).
    """
    for candidate in (Path.cwd(), contracts_dir().parent):
        if (candidate / "Dockerfile").is_file() and (candidate / COMPOSE_FILE).is_file() \
                and (candidate / "simulator").is_dir():
            return candidate
    raise RuntimeError("up --docker builds the harness image from a checkout of avito-harness (Dockerfile, "
                       f"{COMPOSE_FILE}); run it there. With an installed wheel use `avito-harness sim`, or "
                       "`avito-harness init --ci ... --docker` for a compose file that installs the wheel")


def compose_services(path: Path | None = None, environ: Mapping[str, str] | None = None) -> dict[str, dict[str, Any]]:
    """The compose file's services with ``${NAME:-default}`` resolved as compose does (the environment, else the
    default)."""
    env = os.environ if environ is None else environ
    text = (path or root() / COMPOSE_FILE).read_text(encoding="utf-8")
    text = re.sub(r"\$\{(\w+):-([^}]*)\}", lambda m: env.get(m.group(1)) or m.group(2), text)
    doc = yaml.safe_load(text)
    services: dict[str, dict[str, Any]] = doc["services"]
    return services


def docker_client() -> Any:
    """A connected Docker client, or a RuntimeError saying why there is none."""
    try:
        import docker  # type: ignore[import-untyped]
    except ImportError as exc:  # pragma: no cover - the test extra installs it
        raise RuntimeError("the docker Python SDK is not installed (pip install docker)") from exc
    try:
        client = docker.from_env()
        client.ping()
    except Exception as exc:
        raise RuntimeError(f"no Docker engine answers: {exc}") from None
    return client


def _host_port(service: dict[str, Any]) -> int:
    published = str(service["ports"][0])  # "127.0.0.1:8080:8080"
    return int(published.split(":")[1])


def _image(name: str, service: dict[str, Any], gateway_image: str | None) -> str:
    return (gateway_image or IMAGE) if name == "gateway" else IMAGE


def up(console: Console, gateway_image: str | None = None, *, build: bool = False) -> dict[str, str]:
    """Start the stack; ``build`` rebuilds the image from this tree even when one is cached."""
    client = docker_client()
    if not build and _image_present(client):
        console.print(f"using image {IMAGE}")
    else:
        console.print(f"building {IMAGE} from {root()} ...")
        client.images.build(path=str(root()), tag=IMAGE, rm=True)
    network = next(iter(client.networks.list(names=[NETWORK])), None) or client.networks.create(NETWORK, driver="bridge")
    services = compose_services()
    urls: dict[str, str] = {}
    for name in SERVICES:
        spec = services[name]
        port = _host_port(spec)
        container = client.containers.create(
            _image(name, spec, gateway_image), command=spec["command"], name=PREFIX + name, hostname=name,
            environment={k: str(v) for k, v in (spec.get("environment") or {}).items()},
            ports={f"{port}/tcp": ("127.0.0.1", port)}, detach=True,
        )
        network.connect(container, aliases=[name])  # the compose service name is the host name the others use
        container.start()
        urls[name] = f"http://127.0.0.1:{port}"
        _wait_healthy(name, urls[name] + HEALTH[name])
    return urls


def _image_present(client: Any) -> bool:
    try:
        client.images.get(IMAGE)
    except Exception:  # docker.errors.ImageNotFound; the SDK is imported lazily
        return False
    return True


def _wait_healthy(name: str, url: str, timeout: float = 60.0) -> None:
    if not wait_until_up(url, timeout, interval=0.5):
        raise RuntimeError(f"{name} did not become healthy at {url} within {timeout:g} s")


def down(console: Console) -> None:
    client = docker_client()
    for name in SERVICES:
        for container in client.containers.list(all=True, filters={"name": PREFIX + name}):
            container.remove(force=True)
            console.print(f"removed {container.name}")
    for network in client.networks.list(names=[NETWORK]):
        network.remove()


def run_up(args: argparse.Namespace, console: Console) -> int:
    try:
        if args.down:
            down(console)
            return 0
        urls = up(console, args.gateway_image)
    except RuntimeError as exc:
        console.print(f"[red]error:[/red] {exc}")
        return 1
    table = Table(title="avito-harness stack (docker)")
    table.add_column("service")
    table.add_column("URL")
    for name, url in urls.items():
        table.add_row(name, url)
    console.print(table)
    console.print("`avito-harness up --docker --down` removes it.")
    return 0
