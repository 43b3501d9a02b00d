"""The gateway served on 127.0.0.1 in front of the simulated stack (fake Avito + fake n8n), one virtual clock."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest

from avito_gateway.app import create_app
from avito_gateway.deps import Services
from avito_gateway.settings import GatewaySettings
from avito_harness.stack.local import Stack
from avito_harness.stack.serve import ServedApp, serve_in_thread
from tests.conftest import CONTRACTS

USER = 100000001
API_KEY = "test-api-key"


def normalized_schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads((CONTRACTS / "normalized-message.schema.json").read_text())
    return schema


def assert_normalized(message: dict[str, Any]) -> None:
    jsonschema.validate(message, normalized_schema())


@dataclass
class GatewayHandle:
    served: ServedApp
    settings: GatewaySettings
    api: httpx.Client

    @property
    def url(self) -> str:
        return self.served.url

    @property
    def services(self) -> Services:
        found: Services = self.served.app.state.services
        return found

    def webhook_url(self) -> str:
        """The receiver with the gateway's secret path (configured, or generated in its data dir)."""
        return f"{self.url}/webhook/avito/{self.services.webhook_auth.secret}"

    def stop(self) -> None:
        self.api.close()
        self.served.stop()


@pytest.fixture
def make_gateway(sim: Stack, tmp_path: Path) -> Iterator[Callable[..., GatewayHandle]]:
    """Start a gateway (settings overridable); every one started is stopped after the test."""
    started: list[GatewayHandle] = []

    def make(clock: Any = None, double: str | None = None, **overrides: Any) -> GatewayHandle:
        """``double``: one of the planted-defect gateways (avito_doubles) instead of ours, built the same way."""
        values: dict[str, Any] = {
            "api_key": API_KEY,
            "avito_client_id": "sim-client-id",
            "avito_client_secret": "sim-client-secret",
            "avito_user_id": USER,
            "avito_api_base_url": sim.urls["avito"],
            "n8n_webhook_url": f"{sim.urls['n8n']}/webhook/avito",
            "data_dir": tmp_path / "gateway-data",
            "retry_min_wait": 0.5,
            "retry_max_wait": 4,
            "connection_timeout": 5,
            "outbox_poll_interval": 0.02,
            "image_url_allowed_hosts": ("127.0.0.1",),
            **overrides,
        }
        settings = GatewaySettings(_env_file=None, **values)  # type: ignore[call-arg]
        if double is None:
            app = create_app(settings, clock=clock or sim.clock)
        else:
            from avito_doubles.catalogue import find

            app = find(double).in_process(values, clock or sim.clock)
        served = serve_in_thread(app, name="gateway")
        handle = GatewayHandle(served, settings, httpx.Client(base_url=served.url, headers={"X-API-Key": API_KEY},
                                                               timeout=30))
        started.append(handle)
        return handle

    yield make
    for handle in started:
        handle.stop()


@pytest.fixture
def gateway(make_gateway: Callable[..., GatewayHandle]) -> GatewayHandle:
    return make_gateway()


def first_chat(sim: Stack) -> str:
    chat_id: str = sim.avito.account(USER)["chats"][0]["id"]
    return chat_id


def chat_texts(sim: Stack, chat_id: str) -> list[str]:
    """The chat's texts as the fake Avito holds them, oldest first."""
    return [m["content"].get("text", "") for m in sim.avito.chat(USER, chat_id)["messages"]]


def subscribe(gateway: GatewayHandle) -> None:
    response = gateway.api.post("/api/webhook/subscribe", json={"url": gateway.webhook_url()})
    assert response.status_code == 200, response.text


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0, what: str = "the condition") -> float:
    """Poll ``predicate`` (real time, a short pause between looks) until it holds; returns the seconds it took,
    fails after ``timeout``."""
    started = time.monotonic()
    pause = threading.Event()
    while not predicate():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"{what} did not happen within {timeout:g} s")
        pause.wait(0.02)
    return time.monotonic() - started
