"""For any interleaving of customer messages, sends, reads and deletes in a chat,
the message list, the read flags and the delivered webhooks stay consistent."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import httpx
from fastapi.testclient import TestClient
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from avito_harness.fakes.avito.app import create_app
from avito_harness.fakes.clock import FakeClock
from avito_harness.fakes.settings import DEMO_USER_ID, SimSettings

USER = DEMO_USER_ID
HOOK = "http://127.0.0.1:9/hook"
texts = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=40).filter(str.strip)


@dataclass
class Expected:
    id: str
    mine: bool
    read: bool
    deleted: bool = False
    created: int = 0


class ChatMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.delivered: list[dict[str, Any]] = []

        def hook(request: httpx.Request) -> httpx.Response:
            body = json.loads(request.content)
            if body:
                self.delivered.append(body)
            return httpx.Response(200, json={})

        self.clock = FakeClock()
        app = create_app(SimSettings(demo_data=False), clock=self.clock, transport=httpx.MockTransport(hook))
        self.backend = app.state.backend
        self.api = TestClient(app)
        token = self.api.post("/token", data={"grant_type": "client_credentials", "client_id": "sim-client-id",
                                              "client_secret": "sim-client-secret"}).json()["access_token"]
        self.auth = {"Authorization": f"Bearer {token}"}
        item = self.api.post(f"/_sim/accounts/{USER}/items", json={"title": "АКБ", "price": 5000}).json()
        self.chat_id = self.api.post(f"/_sim/accounts/{USER}/chats", json={"item_id": item["id"]}).json()["id"]
        assert self.api.post("/messenger/v3/webhook", json={"url": HOOK}, headers=self.auth).status_code == 200
        self.model: list[Expected] = []

    def _settle(self) -> None:
        self.backend.dispatcher.wait_for(len(self.model), timeout=5)

    @rule(text=texts)
    def customer_writes(self, text: str) -> None:
        message = self.api.post(f"/_sim/accounts/{USER}/chats/{self.chat_id}/messages", json={"text": text}).json()["message"]
        self.model.append(Expected(message["id"], mine=False, read=False, created=message["created"]))

    @rule(text=texts)
    def we_send(self, text: str) -> None:
        response = self.api.post(f"/messenger/v1/accounts/{USER}/chats/{self.chat_id}/messages",
                                 json={"type": "text", "message": {"text": text[:1000]}}, headers=self.auth)
        assert response.status_code == 200
        self.model.append(Expected(response.json()["id"], mine=True, read=True, created=response.json()["created"]))

    @rule()
    def we_read(self) -> None:
        assert self.api.post(f"/messenger/v1/accounts/{USER}/chats/{self.chat_id}/read", headers=self.auth).status_code == 200
        for m in self.model:
            m.read = True

    @rule(seconds=st.sampled_from([1, 600, 3599, 3601]))
    def time_passes(self, seconds: int) -> None:
        self.clock.advance(seconds)

    @precondition(lambda self: any(m.mine for m in self.model))
    @rule(data=st.data())
    def we_delete(self, data: st.DataObject) -> None:
        target = data.draw(st.sampled_from([m for m in self.model if m.mine]))
        response = self.api.post(f"/messenger/v1/accounts/{USER}/chats/{self.chat_id}/messages/{target.id}", headers=self.auth)
        too_old = self.clock.now() - target.created > 3600
        if target.deleted or not too_old:
            assert response.status_code == 200
            target.deleted = True
        else:
            assert response.status_code == 400

    @invariant()
    def list_matches_what_happened(self) -> None:
        listed = self.api.get(f"/messenger/v3/accounts/{USER}/chats/{self.chat_id}/messages/",
                              headers=self.auth).json()["messages"]
        expected = list(reversed(self.model))[:100]
        assert [m["id"] for m in listed] == [m.id for m in expected]
        for got, want in zip(listed, expected, strict=True):
            assert got["direction"] == ("out" if want.mine else "in")
            assert got["is_read"] is want.read
            assert (got["type"] == "deleted") is want.deleted
            assert not want.deleted or got["content"] == {}

    @invariant()
    def unread_filter_agrees_with_read_flags(self) -> None:
        unread = self.api.get(f"/messenger/v2/accounts/{USER}/chats", params={"unread_only": "true"},
                              headers=self.auth).json()["chats"]
        assert (self.chat_id in [c["id"] for c in unread]) == any(not m.read for m in self.model)

    @invariant()
    def every_new_message_is_delivered_once_in_order(self) -> None:
        self._settle()
        values = [d["payload"]["value"] for d in self.delivered]
        assert [v["id"] for v in values] == [m.id for m in self.model]
        for value, want in zip(values, self.model, strict=True):
            assert (value["author_id"] == USER) is want.mine
            assert value["user_id"] == USER and value["chat_id"] == self.chat_id

    def teardown(self) -> None:
        self.api.close()
        self.backend.close()


TestChatConsistency = ChatMachine.TestCase
TestChatConsistency.settings = settings(stateful_step_count=15)
