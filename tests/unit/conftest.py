"""Unit fixtures: the fake Avito in-process (no sockets), a frozen clock, a webhook sink."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from avito_harness.fakes.avito.app import create_app
from avito_harness.fakes.clock import Clock, FakeClock
from avito_harness.fakes.settings import DEMO_USER_ID, SimSettings
from tests.conftest import assert_avito_contract

USER = DEMO_USER_ID
CLIENT = {"client_id": "sim-client-id", "client_secret": "sim-client-secret"}


@dataclass
class HookSink:
    """Stands in for webhook receivers: records each POST, answers ``status`` (or raises ``error``)."""

    status: int = 200
    error: Exception | None = None
    statuses: list[int] = field(default_factory=list)
    calls: list[httpx.Request] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.calls.append(request)
        if self.error is not None:
            raise self.error
        status = self.statuses.pop(0) if self.statuses else self.status
        return httpx.Response(status, json={})

    def bodies(self) -> list[dict[str, Any]]:
        """Delivered webhook bodies (probes, which are ``{}``, left out)."""
        out = [json.loads(r.content) for r in self.calls]
        return [b for b in out if b]


class ContractClient(TestClient):
    """A TestClient that checks every Avito answer against contracts/avito."""

    def request(self, *args: Any, **kwargs: Any) -> httpx.Response:  # type: ignore[override]
        response = super().request(*args, **kwargs)
        assert_avito_contract(response)
        return response


@pytest.fixture
def clock() -> Clock:
    return FakeClock()


@pytest.fixture
def sink() -> HookSink:
    return HookSink()


@pytest.fixture
def settings() -> SimSettings:
    return SimSettings(avito_port=0, n8n_port=0)


@pytest.fixture
def app(settings: SimSettings, clock: Clock, sink: HookSink) -> Any:
    return create_app(settings, clock=clock, transport=httpx.MockTransport(sink))


@pytest.fixture
def api(app: Any) -> Iterator[ContractClient]:
    with ContractClient(app) as client:
        yield client


@pytest.fixture
def backend(app: Any) -> Any:
    return app.state.backend


def get_token(api: TestClient, **creds: str) -> str:
    response = api.post("/token", data={"grant_type": "client_credentials", **(creds or CLIENT)})
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


@pytest.fixture
def auth(api: ContractClient) -> dict[str, str]:
    return {"Authorization": f"Bearer {get_token(api)}"}


def first_chat(api: TestClient, auth: dict[str, str], chat_types: str = "u2i") -> dict[str, Any]:
    chats = api.get(f"/messenger/v2/accounts/{USER}/chats", params={"chat_types": chat_types}, headers=auth)
    assert chats.status_code == 200
    chat: dict[str, Any] = chats.json()["chats"][0]
    return chat


def messages_of(api: TestClient, auth: dict[str, str], chat_id: str, **params: Any) -> list[dict[str, Any]]:
    response = api.get(f"/messenger/v3/accounts/{USER}/chats/{chat_id}/messages/", params=params, headers=auth)
    assert response.status_code == 200, response.text
    body = response.json()
    result: list[dict[str, Any]] = body["messages"] if isinstance(body, dict) else body
    return result


def say(api: TestClient, chat_id: str, text: str = "Здравствуйте", user: int = USER, **fields: Any) -> dict[str, Any]:
    response = api.post(f"/_sim/accounts/{user}/chats/{chat_id}/messages", json={"text": text, **fields})
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result
