"""One gateway, two Avito accounts (shops): webhooks routed by user_id, API keys that act for their account only,
a token and a rate limit per account."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from avito_harness.stack.local import Stack
from tests.gateway.conftest import API_KEY, USER, GatewayHandle, assert_normalized, first_chat, subscribe

SHOP2, SHOP2_KEY = 200000002, "shop2-api-key"


@pytest.fixture
def two_shops(sim: Stack, make_gateway: Callable[..., GatewayHandle], tmp_path: Path,
              monkeypatch: pytest.MonkeyPatch) -> Callable[..., GatewayHandle]:
    """The environment's account (USER) plus shop 2 from ACCOUNTS_FILE, its secret in the environment."""
    sim.avito.create_account(user_id=SHOP2, client_id="shop2-client-id", client_secret="shop2-client-secret")
    sim.n8n.register("shop2")
    monkeypatch.setenv("SHOP2_CLIENT_SECRET", "shop2-client-secret")
    accounts = tmp_path / "accounts.yaml"
    accounts.write_text(yaml.safe_dump({"accounts": [{
        "name": "shop2", "user_id": SHOP2, "client_id": "shop2-client-id", "client_secret_env": "SHOP2_CLIENT_SECRET",
        "api_keys": [SHOP2_KEY], "n8n_webhook_url": sim.n8n.webhook_url("shop2"), "tenant": "shop-two",
    }]}))

    def make(**overrides: object) -> GatewayHandle:
        return make_gateway(accounts_file=accounts, **overrides)

    return make


def shop2_chat(sim: Stack, *, greet: bool = True) -> str:
    """A chat of shop 2 (Avito lists a chat once it has a message: the customer greets)."""
    chat_id: str = sim.avito.create_chat(SHOP2, customer_name="Пётр")["id"]
    if greet:
        sim.avito.customer_says(SHOP2, chat_id, "Здравствуйте")
    return chat_id


def as_shop2(gateway: GatewayHandle) -> dict[str, str]:
    return {"X-API-Key": SHOP2_KEY}


def test_each_shops_webhooks_reach_its_own_n8n_url_with_its_tenant(two_shops: Callable[..., GatewayHandle],
                                                                     sim: Stack) -> None:
    gateway = two_shops()
    subscribe(gateway)
    secret2 = next(s for s in gateway.served.app.state.deployment.accounts if s.account.name == "shop2").webhook_auth
    answer = gateway.api.post("/api/webhook/subscribe", headers=as_shop2(gateway),
                              json={"url": f"{gateway.url}/webhook/avito"})
    assert answer.status_code == 200, answer.text
    assert sim.avito.account(SHOP2)["subscriptions"][0]["url"].endswith(f"/webhook/avito/{secret2.secret}")
    assert secret2.secret != gateway.services.webhook_auth.secret  # each shop its own secret path

    sim.avito.customer_says(USER, first_chat(sim), "мне для машины")
    sim.avito.customer_says(SHOP2, shop2_chat(sim, greet=False), "а для лодки?")
    (first,) = sim.n8n.wait_for(1, path="avito", timeout=5)
    (second,) = sim.n8n.wait_for(1, path="shop2", timeout=5)
    assert_normalized(second["body"])
    assert (first["body"]["text"], first["body"]["meta"]["user_id"]) == ("мне для машины", USER)
    assert "tenant" not in first["body"]["meta"]
    assert (second["body"]["text"], second["body"]["meta"]["user_id"]) == ("а для лодки?", SHOP2)
    assert second["body"]["meta"]["tenant"] == "shop-two" and second["headers"]["x-tenant"] == "shop-two"


def test_a_key_never_reaches_another_shops_chats_or_messages(two_shops: Callable[..., GatewayHandle],
                                                             sim: Stack) -> None:
    gateway = two_shops()
    subscribe(gateway)
    mine = shop2_chat(sim)
    theirs = first_chat(sim)
    before = sim.avito.chat(USER, theirs)["messages"]
    listed = gateway.api.get("/api/chats", headers=as_shop2(gateway), params={"chat_types": "u2i,u2u"}).json()["chats"]
    assert [c["id"] for c in listed] == [mine]
    refused = gateway.api.post("/api/messages/send", headers=as_shop2(gateway), json={"chat_id": theirs, "text": "спам"})
    assert refused.status_code == 404, refused.text
    assert gateway.api.get(f"/api/chats/{theirs}/messages", headers=as_shop2(gateway)).status_code == 404
    assert sim.avito.chat(USER, theirs)["messages"] == before

    sim.avito.customer_says(USER, theirs, "только для магазина 1")
    sim.n8n.wait_for(1, path="avito", timeout=5)
    assert gateway.api.get("/api/inbound", headers=as_shop2(gateway)).json()["messages"] == []
    assert gateway.api.get("/api/outbox", headers=as_shop2(gateway)).json()["items"] == []
    assert [m["chat_id"] for m in gateway.api.get("/api/inbound").json()["messages"]] == [theirs]


def test_each_shop_has_its_own_token_and_its_own_rate_limit(two_shops: Callable[..., GatewayHandle],
                                                            sim: Stack) -> None:
    gateway = two_shops(rate_limit_requests=2)
    mine, theirs = first_chat(sim), shop2_chat(sim)
    tokens_before = {user: set(sim.avito.tokens(user)) for user in (USER, SHOP2)}
    for n in range(2):
        assert gateway.api.post("/api/messages/send", json={"chat_id": mine, "text": f"№{n}"}).status_code == 200
    assert gateway.api.post("/api/messages/send", json={"chat_id": mine, "text": "ещё"}).status_code == 429
    other = gateway.api.post("/api/messages/send", headers=as_shop2(gateway), json={"chat_id": theirs, "text": "да"})
    assert other.status_code == 200, other.text  # shop 1's burst is not shop 2's
    for user in (USER, SHOP2):  # each shop fetched one token, with its own credentials
        assert len(set(sim.avito.tokens(user)) - tokens_before[user]) == 1
    assert sim.avito.chat(SHOP2, theirs)["messages"][-1]["content"]["text"] == "да"


def test_the_same_idempotency_key_in_two_shops_is_two_sends(two_shops: Callable[..., GatewayHandle], sim: Stack) -> None:
    gateway = two_shops()
    mine, theirs = first_chat(sim), shop2_chat(sim)
    key = {"Idempotency-Key": "order-42"}
    one = gateway.api.post("/api/messages/send", headers=key, json={"chat_id": mine, "text": "заказ готов"})
    two = gateway.api.post("/api/messages/send", headers={**key, **as_shop2(gateway)},
                           json={"chat_id": theirs, "text": "заказ отправлен"})
    assert (one.status_code, two.status_code) == (200, 200), two.text
    assert "idempotent_replay" not in two.json()
    assert sim.avito.chat(SHOP2, theirs)["messages"][-1]["content"]["text"] == "заказ отправлен"


def test_a_webhook_on_one_shops_secret_path_for_another_shop_is_refused_and_recorded(
        two_shops: Callable[..., GatewayHandle], sim: Stack) -> None:
    gateway = two_shops()
    subscribe(gateway)
    chat = shop2_chat(sim)
    said = sim.avito.customer_says(SHOP2, chat, "чужой путь")  # shop 2 has no subscription: nothing is delivered
    body = {"id": "w1", "version": "v3.0.0", "timestamp": 1, "payload": {"type": "message", "value": {
        "id": said["message"]["id"], "chat_id": chat, "user_id": SHOP2, "author_id": 5, "created": 1,
        "type": "text", "chat_type": "u2u", "content": {"text": "чужой путь"}}}}
    answer = gateway.api.post(gateway.webhook_url(), json=body)
    assert answer.status_code == 200  # Avito always gets its 200
    (refused,) = gateway.api.get("/api/inbound/rejected").json()["rejected"]
    assert f"account {SHOP2} came on the secret path of account {USER}" in refused["reason"]
    assert gateway.api.get("/api/inbound", headers=as_shop2(gateway)).json()["messages"] == []
    assert sim.n8n.received(path="shop2") == []


def test_the_plain_path_routes_by_user_id_and_refuses_an_unknown_account(two_shops: Callable[..., GatewayHandle],
                                                                          sim: Stack) -> None:
    gateway = two_shops(webhook_plain_path="allow")
    chat = shop2_chat(sim)
    value = {"id": "plain-1", "chat_id": chat, "user_id": SHOP2, "author_id": 5, "created": 1, "type": "text",
             "chat_type": "u2u", "content": {"text": "по общему адресу"}}
    webhook = {"id": "w1", "version": "v3.0.0", "timestamp": 1, "payload": {"type": "message", "value": value}}
    assert gateway.api.post("/webhook/avito", json=webhook).status_code == 200
    (received,) = sim.n8n.wait_for(1, path="shop2", timeout=5)
    assert received["body"]["meta"]["external_message_id"] == "plain-1"
    stranger = {**webhook, "payload": {"type": "message", "value": {**value, "id": "plain-2", "user_id": 999}}}
    assert gateway.api.post("/webhook/avito", json=stranger).status_code == 200
    reasons = [r["reason"] for r in gateway.api.get("/api/inbound/rejected").json()["rejected"]]
    assert reasons == [f"webhook for account 999, this gateway serves {USER}, {SHOP2}"]


def test_health_names_the_shop_whose_token_cannot_be_had(two_shops: Callable[..., GatewayHandle], sim: Stack,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOP2_CLIENT_SECRET", "a-wrong-secret")
    gateway = two_shops()
    health = gateway.api.get("/health")
    assert health.status_code == 503
    assert "cannot obtain an Avito token for account shop2" in health.json()["reason"]
    assert gateway.api.get("/info").json()["accounts"] == 2
    assert API_KEY not in health.text


def test_an_account_with_its_own_avito_url_talks_to_that_avito_only(sim: Stack, make_gateway: Callable[..., GatewayHandle],
                                                                   tmp_path: Path) -> None:
    """``avito_api_base_url`` per account (a sandbox, a proxy, a shard of the simulator): its token and its sends
    go there, the other account's stay on AVITO_API_BASE_URL."""
    from avito_harness.fakes.settings import SimSettings

    with Stack.start(SimSettings(avito_port=0, n8n_port=0, stt_port=0)) as other:
        other.avito.create_account(user_id=SHOP2, client_id="shop2-client-id", client_secret="shop2-client-secret")
        chat = other.avito.create_chat(SHOP2, customer_name="Пётр")["id"]
        accounts = tmp_path / "accounts.yaml"
        accounts.write_text(yaml.safe_dump({"accounts": [{
            "name": "shop2", "user_id": SHOP2, "client_id": "shop2-client-id", "client_secret": "shop2-client-secret",
            "api_keys": [SHOP2_KEY], "avito_api_base_url": other.urls["avito"]}]}))
        gateway = make_gateway(accounts_file=accounts)
        sent = gateway.api.post("/api/messages/send", json={"chat_id": chat, "text": "с другого Avito"},
                                headers=as_shop2(gateway))
        assert sent.status_code == 200, sent.text
        assert "с другого Avito" in [m["content"].get("text") for m in other.avito.chat(SHOP2, chat)["messages"]]
        assert sim.avito.journal(path="/messenger/*") == [] and other.avito.journal(path="/token")
        ours = gateway.api.post("/api/messages/send", json={"chat_id": first_chat(sim), "text": "с нашего"})
        assert ours.status_code == 200 and other.avito.journal(path="/messenger/*/accounts/100000001/*") == []
