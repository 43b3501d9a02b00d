"""Shared test helpers: the project's own contracts, loaded from contracts/ (never from outside the repo)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any, NoReturn

import httpx
import jsonschema
import pytest
import schemathesis

#: The acceptance run's step library is product code; tests/bdd runs the repository's features through it.
pytest_plugins = ["avito_harness.bdd.steps"]

ROOT = Path(__file__).resolve().parent.parent
CONTRACTS = ROOT / "contracts"


@cache
def avito_contract() -> Any:
    return schemathesis.openapi.from_path(str(CONTRACTS / "avito" / "avito-messenger.openapi.yaml"))


@cache
def webhook_schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads((CONTRACTS / "avito" / "webhook-v3.schema.json").read_text())
    return schema


def assert_webhook_envelope(body: dict[str, Any]) -> None:
    jsonschema.validate(body, webhook_schema())


#: Spellings Avito also serves for a documented path (its token endpoint answers with and without the slash).
ALIASES = {"/token/": "/token"}


def assert_avito_contract(response: httpx.Response) -> bool:
    """Validate a fake-Avito answer against contracts/avito. False for control and media paths and for an unknown
    path answered 404/405 as Avito would; a path the fake serves but the contract lacks is a failure."""
    request = response.request
    path = request.url.path
    if path.startswith(("/_sim", "/media")) or path == "/oauth":  # control, files, the consent page (avito.ru, HTML)
        return False
    path = ALIASES.get(path, path)
    operation = avito_contract().find_operation_by_path(request.method, path)
    if operation is None:
        assert response.status_code in (404, 405), (
            f"{request.method} {path} answered {response.status_code} but is not in contracts/avito: add it or refuse it")
        return False
    operation.validate_response(response)
    return True


from hypothesis import HealthCheck, settings  # noqa: E402

settings.register_profile("dev", max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# CI explores the same examples on every run (a red build is reproducible); local runs explore new ones
settings.register_profile("ci", max_examples=60, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci" if os.environ.get("CI") else "dev")


def installed_n8n() -> Any:
    """The pinned n8n from the cache (``make test`` installs it when Node.js >= 20.19 is here), else skip saying why.
    Under CI=true with a usable Node.js, a missing n8n is a broken pipeline: the test fails instead."""
    from avito_harness.real.n8n.install import MIN_NODE, N8nInstall, node_version

    install = N8nInstall.default()
    if install.installed_version() == install.version:
        return install
    node = node_version()
    if node is None or node < MIN_NODE:
        pytest.skip(f"real n8n needs Node.js >= {MIN_NODE[0]}.{MIN_NODE[1]} (here: {node or 'none'})")
    missing(f"n8n {install.version} is not in {install.root}: `avito-harness n8n install` (make test does)")


def missing(reason: str) -> NoReturn:
    """A real part (n8n, Postgres) is not here: skipped on a laptop; under CI, which installs it, a failure."""
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


POSTGRES_MISSING = "no PostgreSQL server binaries here: apt-get install postgresql (.ci/run does)"


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Any]:
    """One real PostgreSQL server per test process (xdist worker), started by the project itself."""
    from avito_harness.real.postgres import PostgresServer, find_binaries

    if find_binaries() is None:
        missing(POSTGRES_MISSING)
    with PostgresServer() as server:
        yield server


@pytest.fixture
def postgres_url(postgres_server: Any) -> Iterator[str]:
    """A fresh, empty database on the session's server for one test."""
    import uuid

    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    yield postgres_server.new_database(name)
    admin = postgres_server.url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as db:
        db.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
