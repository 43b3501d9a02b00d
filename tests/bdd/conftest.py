"""The acceptance run's stack and the shared step vocabulary of every feature.

One session stack (fake Avito, fake n8n with flows, fake STT) on a frozen
clock. Per scenario: a reset with a scenario-specific seed (fresh account and
ids), and the gateway under test: ours in-process on the same clock
(default), a running one (``--gateway-url``), or one the harness starts
(``--gateway-cmd``). Scenarios tagged ``@gateway_clock`` need the gateway to
run on the harness clock and are skipped for external gateways, with the reason.
"""

from __future__ import annotations

import os
import shlex
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from pytest_bdd import given, parsers, then, when

from gateway.app import create_app
from gateway.settings import GatewaySettings
from simulator.avito.media import png_bytes
from simulator.gateway_process import GatewayProcess, free_port
from simulator.remote import RemoteStack, parse_stack_urls
from simulator.serve import ServedApp, serve_in_thread
from simulator.settings import SimSettings
from simulator.stack import Stack

USER = 100000001
SETTLE = 0.5  # real seconds a foreign gateway gets to forward anything more


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("avito-harness")
    group.addoption("--gateway-cmd", default=None,
                    help="start the gateway under test with this command ({port} is replaced); env names of the deployment")
    group.addoption("--stack-url", default=None,
                    help="use fakes running elsewhere: avito=URL,n8n=URL,stt=URL (the compose file's acceptance service)")


@dataclass
class Harness:
    stack: Any  # Stack, or RemoteStack for containers
    gateway_url: str
    api_key: str
    mode: str
    api: httpx.Client
    chat_id: str = ""
    response: httpx.Response | None = None
    customer_messages: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def avito(self) -> Any:
        return self.stack.avito

    @property
    def n8n(self) -> Any:
        return self.stack.n8n

    def chat_texts(self, chat_id: str | None = None) -> list[str]:
        messages = self.avito.chat(USER, chat_id or self.chat_id)["messages"]
        return [m["content"].get("text", "") for m in messages]

    def send(self, text: str, key: str | None = None, chat_id: str | None = None) -> httpx.Response:
        headers = {"Idempotency-Key": key} if key else {}
        self.response = self.api.post("/api/messages/send", json={"chat_id": chat_id or self.chat_id, "text": text},
                                      headers=headers)
        return self.response


# --- the stack and the gateway --------------------------------------------------------------------------

@pytest.fixture(scope="session")
def gateway_mode(pytestconfig: pytest.Config) -> str:
    if pytestconfig.getoption("--gateway-url"):
        return "url"
    if pytestconfig.getoption("--gateway-cmd"):
        return "cmd"
    return "embedded"


@pytest.fixture(scope="session")
def acceptance_stack(pytestconfig: pytest.Config, gateway_mode: str) -> Iterator[Any]:
    """Free ports when the harness starts the gateway (embedded or --gateway-cmd: it is told the URLs); for a
    gateway already running (--gateway-url), the ports `avito-harness sim` prints."""
    remote = pytestconfig.getoption("--stack-url")
    if remote:
        stack = RemoteStack(parse_stack_urls(remote))
        yield stack
        stack.close()
        return
    overrides: dict[str, Any] = {"clock": "frozen", "n8n_mode": "record"}
    if gateway_mode in ("embedded", "cmd"):
        overrides.update(avito_port=0, n8n_port=0, stt_port=0)
    with Stack.start(SimSettings.from_env(os.environ, **overrides)) as stack:
        yield stack


@pytest.fixture(scope="session")
def gateway_process(pytestconfig: pytest.Config, acceptance_stack: Any, gateway_mode: str) -> Iterator[GatewayProcess | None]:
    if gateway_mode != "cmd":
        yield None
        return
    s = acceptance_stack.settings
    port = free_port()
    command = [part.replace("{port}", str(port)) for part in shlex.split(pytestconfig.getoption("--gateway-cmd"))]
    process = GatewayProcess(
        avito_url=acceptance_stack.urls["avito"], n8n_webhook_url=f"{acceptance_stack.urls['n8n']}/webhook/avito",
        client_id=s.avito_client_id, client_secret=s.avito_client_secret, user_id=s.avito_user_id,
        api_key=pytestconfig.getoption("--gateway-api-key") or "test-api-key", port=port, command=command,
    )
    process.start()
    yield process
    process.stop()


@pytest.fixture
def harness(request: pytest.FixtureRequest, acceptance_stack: Any, gateway_mode: str,
            gateway_process: GatewayProcess | None, tmp_path: Path) -> Iterator[Harness]:
    if gateway_mode != "embedded" and request.node.get_closest_marker("gateway_clock"):
        pytest.skip("needs the gateway to run on the harness's virtual clock; only the embedded gateway does")
    if gateway_mode != "embedded" and request.node.get_closest_marker("gateway_timeout"):
        pytest.skip("would wait out the external gateway's CONNECTION_TIMEOUT in real time")
    stack = acceptance_stack
    stack.reset(seed=zlib.crc32(request.node.nodeid.encode()))
    served: ServedApp | None = None
    api_key = request.config.getoption("--gateway-api-key") or "test-api-key"
    if gateway_mode == "embedded":
        settings = GatewaySettings(  # type: ignore[call-arg]
            _env_file=None, api_key=api_key, avito_client_id=stack.settings.avito_client_id,
            avito_client_secret=stack.settings.avito_client_secret, avito_user_id=USER,
            avito_api_base_url=stack.urls["avito"], n8n_webhook_url=f"{stack.urls['n8n']}/webhook/avito",
            data_dir=tmp_path / "gateway", connection_timeout=0.5, max_retries=1, retry_min_wait=1, retry_max_wait=4,
            outbox_poll_interval=0.01,
        )
        served = serve_in_thread(create_app(settings, clock=stack.clock), name="gateway")
        url = served.url
    elif gateway_mode == "cmd":
        assert gateway_process is not None
        url = gateway_process.url
    else:
        url = str(request.config.getoption("--gateway-url")).rstrip("/")
    stack.n8n.flows(gateway_url=url, gateway_api_key=api_key)
    h = Harness(stack, url, api_key, gateway_mode, httpx.Client(base_url=url, headers={"X-API-Key": api_key}, timeout=30))
    h.chat_id = next(c["id"] for c in stack.avito.account(USER)["chats"] if c["chat_type"] == "u2i")
    try:
        yield h
    finally:
        request.node.user_properties.append(("transcript", stack.story()))
        if gateway_process is not None:
            request.node.user_properties.append(("gateway output", "".join(gateway_process.output[-40:])))
        h.api.close()
        if served is not None:
            served.stop()


def pytest_bdd_step_error(request: pytest.FixtureRequest, feature: Any, scenario: Any, step: Any, step_func: Any,
                          step_func_args: Any, exception: Exception) -> None:
    request.node.user_properties.append(("failed step", f"{step.keyword} {step.name}"))
    request.node.user_properties.append(("feature", feature.name))


def _settle(harness: Harness) -> None:
    """Whatever the gateway is going to forward has been forwarded. Our gateway says so itself (its outbox flush
    waits for deliveries under way and forwards what is due); a foreign gateway gets a short real-time grace."""
    if harness.mode == "embedded":
        assert harness.api.post("/api/outbox/flush").status_code == 200
        return
    threading.Event().wait(SETTLE)


# --- Given ----------------------------------------------------------------------------------------------

@given("the harness is running")
def _(harness: Harness) -> None:
    assert harness.gateway_url


@given("the gateway is subscribed to Avito webhooks")
def _(harness: Harness) -> None:
    response = harness.api.post("/api/webhook/subscribe", json={"url": f"{harness.gateway_url}/webhook/avito"})
    assert response.status_code == 200, f"the gateway could not subscribe its webhook: {response.text}"


@given("n8n runs the BatteryCRM workflows")
def _(harness: Harness) -> None:
    harness.n8n.flows(mode="flows")


@given("operator mode is on")
def _(harness: Harness) -> None:
    harness.n8n.flows(operator_mode=True)


@given("n8n is down")
def _(harness: Harness) -> None:
    harness.n8n.add_fault(route="POST /webhook/*", status=503, times=None, required=False, name="n8n down")


@given(parsers.parse("Avito delivers every webhook {n:d} times at once"))
def _(harness: Harness, n: int) -> None:
    harness.avito.settings(USER, delivery={"duplicates": n, "concurrent_duplicates": True})


@given(parsers.parse("Avito answers expired tokens with {status:d}"))
def _(harness: Harness, status: int) -> None:
    harness.avito.settings(USER, auth_error_status=status)


@given("the Avito token has expired")
def _(harness: Harness) -> None:
    assert harness.api.get("/api/chats").status_code == 200  # the gateway now holds a token Avito knows
    assert harness.avito.expire_tokens(USER) >= 1


SEND_ROUTE = "POST /messenger/v1/accounts/*/chats/*/messages"


@given("Avito answers the next send with 429 and Retry-After")
def _(harness: Harness) -> None:
    harness.avito.add_fault("rate_limited_429_retry_after", route=SEND_ROUTE, headers={"Retry-After": "5"})


@given(parsers.parse("Avito answers every send with {preset}"))
def _(harness: Harness, preset: str) -> None:
    name = "rate_limited_429" if preset == "429" else preset
    harness.avito.add_fault(name, route=SEND_ROUTE, times=None, required=False)


@given("Avito hangs on every send")
def _(harness: Harness) -> None:
    harness.avito.add_fault("hang", route=SEND_ROUTE, times=None, required=False)


@given("Avito processes the next send but the answer is lost")
def _(harness: Harness) -> None:
    harness.avito.add_fault("answer_lost", route=SEND_ROUTE)


# --- When -----------------------------------------------------------------------------------------------

@when("the gateway subscribes its webhook at Avito")
def _(harness: Harness) -> None:
    harness.response = harness.api.post("/api/webhook/subscribe", json={"url": f"{harness.gateway_url}/webhook/avito"})


@when(parsers.parse('the customer writes "{text}"'))
def _(harness: Harness, text: str) -> None:
    harness.avito.customer_says(USER, harness.chat_id, text)
    harness.customer_messages += 1


@when("the customer sends a photo")
def _(harness: Harness) -> None:
    harness.extra["photo"] = harness.avito.customer_says(USER, harness.chat_id, type="image")["message"]
    harness.customer_messages += 1


@when(parsers.parse('the customer sends a voice message saying "{text}"'))
def _(harness: Harness, text: str) -> None:
    harness.avito.customer_says(USER, harness.chat_id, text, type="voice")
    harness.customer_messages += 1


@when(parsers.parse('the seller replies from the Avito app "{text}"'))
def _(harness: Harness, text: str) -> None:
    harness.avito.customer_says(USER, harness.chat_id, text, author="account")


@when("Avito posts a system message")
def _(harness: Harness) -> None:
    harness.avito.customer_says(USER, harness.chat_id, "[Системное сообщение] Покупатель посмотрел телефон",
                                author="system")


@when(parsers.parse('n8n sends "{text}" through the gateway with idempotency key "{key}"'))
def _(harness: Harness, text: str, key: str) -> None:
    harness.send(text, key)


@when(parsers.parse('n8n sends "{text}" through the gateway'))
def _(harness: Harness, text: str) -> None:
    harness.send(text)


@when("n8n sends a photo through the gateway")
def _(harness: Harness) -> None:
    harness.response = harness.api.post("/api/messages/send/image", data={"chat_id": harness.chat_id},
                                        files={"file": ("promo.png", png_bytes("promo", 320, 240), "image/png")})


@when(parsers.parse('n8n sends "{text}" to every chat and one unknown chat'))
def _(harness: Harness, text: str) -> None:
    chats = [c["id"] for c in harness.avito.account(USER)["chats"]]
    harness.extra["bulk_chats"] = chats
    harness.response = harness.api.post("/api/messages/send/bulk", json={"chat_ids": [*chats, "u2i-unknownChat0000000000"],
                                                                          "text": text})


@when(parsers.parse("n8n makes {n:d} requests within a minute"))
def _(harness: Harness, n: int) -> None:
    harness.extra["statuses"] = [harness.api.get("/api/token") for _ in range(n)]


@when(parsers.parse("{seconds:d} seconds pass"))
def _(harness: Harness, seconds: int) -> None:
    harness.stack.advance(seconds)


@when("n8n is back")
def _(harness: Harness) -> None:
    harness.n8n.clear_faults()


@when("the batching window closes")
def _(harness: Harness) -> None:
    expected = harness.customer_messages
    harness.n8n.wait_event("batched", expected, timeout=10)
    harness.stack.advance(harness.n8n.flows()["batch_window"])


@when(parsers.parse('a {channel} client writes "{text}"'))
def _(harness: Harness, channel: str, text: str) -> None:
    harness.n8n.inject(_normalized(channel, text))
    harness.customer_messages += 1


@when(parsers.parse('the operator answers "{text}"'))
def _(harness: Harness, text: str) -> None:
    (appeal,) = harness.n8n.appeals()
    harness.extra["operator"] = harness.n8n.answer(appeal["id"], text)


# --- Then -----------------------------------------------------------------------------------------------

@then("Avito's probe of the webhook URL passed")
def _(harness: Harness) -> None:
    assert harness.response is not None and harness.response.status_code == 200, harness.response and harness.response.text
    subscribe = harness.avito.journal(method="POST", path="/messenger/v3/webhook")
    assert subscribe and subscribe[-1]["status"] == 200, "Avito refused the subscription: the probe {} did not get 200"


@then("Avito lists the gateway's webhook URL")
def _(harness: Harness) -> None:
    subscriptions = harness.avito.account(USER)["subscriptions"]
    ours = [s for s in subscriptions if str(s.get("url", "")).startswith(f"{harness.gateway_url}/webhook/avito")]
    assert ours and ours[0].get("version") == "3", subscriptions  # a secret path segment may follow


@then("/health says healthy")
def _(harness: Harness) -> None:
    health = httpx.get(f"{harness.gateway_url}/health")
    assert health.status_code == 200 and health.json().get("status") == "healthy", health.text


@then(parsers.parse("/info shows {requests:d} requests per {window:d} seconds and {connections:d} connections"))
def _(harness: Harness, requests: int, window: int, connections: int) -> None:
    info = httpx.get(f"{harness.gateway_url}/info").json()
    for key in ("rate_limit_requests", "rate_limit_window", "max_connections", "avito_user_id"):
        assert key in info, f"/info lacks {key}"
    if harness.mode == "embedded":
        assert (info["rate_limit_requests"], info["rate_limit_window"], info["max_connections"]) == (
            requests, window, connections)


@then("/api/token shows a token without revealing it")
def _(harness: Harness) -> None:
    assert harness.api.get("/api/chats").status_code == 200  # a call that needs a token Avito knows now
    response = harness.api.get("/api/token")
    assert response.status_code == 200, response.text
    issued = harness.avito.tokens(USER)
    assert issued, "the gateway never asked Avito for a token"
    assert not any(token in response.text or token[-12:] in response.text for token in issued), "the token leaked"


@then(parsers.parse("n8n receives {n:d} normalized message"))
@then(parsers.parse("n8n receives {n:d} normalized messages"))
def _(harness: Harness, n: int) -> None:
    received = harness.n8n.wait_for(n, timeout=10, path="avito")
    _settle(harness)
    received = harness.n8n.received("avito")
    assert len(received) == n, f"n8n received {len(received)} messages, expected {n}: {[r['body'].get('text') for r in received]}"
    assert harness.n8n.invalid() == [], f"n8n got messages that break the normalized format: {harness.n8n.invalid()[0]['schema_errors']}"
    harness.extra["message"] = received[-1]["body"]


@then("n8n has received nothing")
def _(harness: Harness) -> None:
    _settle(harness)
    assert harness.n8n.received("avito") == []


@then(parsers.parse('the message text is "{text}"'))
def _(harness: Harness, text: str) -> None:
    assert harness.extra["message"]["text"] == text


@then("the message names the customer, the ad and the chat type")
def _(harness: Harness) -> None:
    message = harness.extra["message"]
    chat = harness.avito.chat(USER, harness.chat_id)
    customer = next(u for u in chat["users"] if u["id"] != USER)
    assert message["client_name"] == customer["name"], "client_name is not the customer's name"
    assert message["external_user_id"] == str(customer["id"])
    assert message["meta"]["ad_id"] == f"item_{chat['context']['value']['id']}", "meta.ad_id is not the chat's item"
    assert message["meta"]["chat_type"] == "u2i"


@then("the message carries the photo in its largest size")
def _(harness: Harness) -> None:
    media = harness.extra["message"]["media"]
    largest = harness.extra["photo"]["content"]["image"]["sizes"]["1280x960"]
    assert media["has_images"] and media["images"] == [{"url": largest}], media


@then(parsers.parse('the message has a voice link that plays "{text}"'))
def _(harness: Harness, text: str) -> None:
    media = harness.extra["message"]["media"]
    assert media["has_voice"], "media.has_voice is false for a voice message"
    assert media["voice_url"], "the voice message was forwarded without voice_url"
    audio = httpx.get(media["voice_url"])
    assert audio.status_code == 200 and text.encode() in audio.content, "the voice link does not play the message"


@then(parsers.parse('n8n transcribed the voice message as "{text}"'))
def _(harness: Harness, text: str) -> None:
    (event,) = harness.n8n.wait_event("transcribed", timeout=10)
    assert event["data"]["text"] == text


@then("the gateway answers 200 with the sent message's id")
def _(harness: Harness) -> None:
    response = harness.response
    assert response is not None and response.status_code == 200, response and response.text
    body = response.json()
    assert body["success"] is True and body["response"]["id"], body
    ids = [m["id"] for m in harness.avito.chat(USER, harness.chat_id)["messages"]]
    assert body["response"]["id"] in ids, "the id in the answer is not a message in the chat"


@then(parsers.parse('the gateway answers {status:d} with code "{code}"'))
def _(harness: Harness, status: int, code: str) -> None:
    response = harness.response
    assert response is not None
    body = response.json()
    assert (response.status_code, body.get("success"), body.get("code")) == (status, False, code), response.text


@then(parsers.parse('the error says "{text}"'))
def _(harness: Harness, text: str) -> None:
    assert harness.response is not None and text in harness.response.json()["error"]


@then(parsers.parse("the error is retryable: {answer}"))
def _(harness: Harness, answer: str) -> None:
    assert harness.response is not None and harness.response.json()["retryable"] is (answer == "yes")


@then(parsers.parse('the customer\'s chat shows "{text}" once'))
def _(harness: Harness, text: str) -> None:
    count = harness.chat_texts().count(text)
    assert count == 1, f'"{text}" is in the chat {count} times'


@then(parsers.parse('the customer\'s chat shows "{text}"'))
def _(harness: Harness, text: str) -> None:
    assert text in harness.chat_texts(), f'"{text}" is not in the customer\'s chat'


@then("the customer's chat ends with a photo")
def _(harness: Harness) -> None:
    assert harness.avito.chat(USER, harness.chat_id)["messages"][-1]["type"] == "image"


@then(parsers.parse('every known chat shows "{text}"'))
def _(harness: Harness, text: str) -> None:
    for chat_id in harness.extra["bulk_chats"]:
        assert harness.chat_texts(chat_id)[-1] == text, chat_id


@then("the unknown chat is reported as not found")
def _(harness: Harness) -> None:
    assert harness.response is not None
    body = harness.response.json()
    (failed,) = [r for r in body["results"] if not r.get("success")]
    assert failed["chat_id"] == "u2i-unknownChat0000000000" and "404" in failed["error"]
    assert body["failed"] == 1 and body["success"] is False


@then("the last one is answered 429 with Retry-After")
def _(harness: Harness) -> None:
    statuses = [r.status_code for r in harness.extra["statuses"]]
    assert statuses[:100] == [200] * 100, "refused before the 100th request"
    last = harness.extra["statuses"][-1]
    assert last.status_code == 429 and int(last.headers["Retry-After"]) > 0
    assert last.json()["error"] == "Rate limit exceeded, try again later"


@then("the customer's chat shows the AI's answer")
@then("the customer's chat shows the AI's answer once")
def _(harness: Harness) -> None:
    (sent,) = harness.n8n.wait_event("sent", timeout=10)
    (row,) = [h for h in harness.n8n.history() if h["id"] == sent["data"]["history_id"]]
    assert harness.chat_texts().count(row["text"]) == 1, "the AI's answer is not in the chat exactly once"


@then(parsers.parse('messages_history has a sent "{kind}" row for the appeal'))
def _(harness: Harness, kind: str) -> None:
    (appeal,) = harness.n8n.appeals()
    rows = [h for h in harness.n8n.history() if h["appeal_id"] == appeal["id"]]
    assert [(r["message_type"], r["status"], r["channel"]) for r in rows] == [(kind, "sent", "avito")], rows
    assert rows[0]["external_message_id"] in [m["id"] for m in harness.avito.chat(USER, harness.chat_id)["messages"]]


@then(parsers.parse("one appeal holds {n:d} message"))
@then(parsers.parse("one appeal holds {n:d} messages"))
def _(harness: Harness, n: int) -> None:
    harness.n8n.wait_event("appeal_created", timeout=10)
    (appeal,) = harness.n8n.appeals()
    batches = harness.n8n.appeal(appeal["id"])["batches"]
    assert sum(len(b["messages"]) for b in batches) == n and len(batches) == 1, batches
    harness.extra["appeal"] = harness.n8n.appeal(appeal["id"])


@then(parsers.parse('the appeal\'s text contains "{text}"'))
def _(harness: Harness, text: str) -> None:
    assert text in harness.extra["appeal"]["batches"][0]["text"]


@then("the appeal waits for an operator")
def _(harness: Harness) -> None:
    harness.n8n.wait_event("waiting_operator", timeout=10)
    (appeal,) = harness.n8n.appeals()
    assert appeal["status"] == "waiting_operator" and harness.n8n.history() == []


@then(parsers.parse("the {channel} outbound stub got the answer"))
def _(harness: Harness, channel: str) -> None:
    harness.n8n.wait_event("stub_sent", timeout=10)
    assert [s["channel"] for s in harness.n8n.stubs()] == [channel]


@then("nothing was sent to Avito")
def _(harness: Harness) -> None:
    assert harness.avito.journal(method="POST", path="/messenger/v1/*") == []


def _normalized(channel: str, text: str) -> dict[str, Any]:
    return {
        "channel": channel, "external_user_id": f"{channel}-42", "external_chat_id": f"{channel}-chat-42", "text": text,
        "timestamp": "2025-12-01T12:00:00", "client_phone": None, "client_name": "Гость", "client_email": None,
        "media": {"has_voice": False, "voice_url": None, "voice_transcribed_text": None, "has_images": False,
                  "images": [], "has_video": False, "videos": [], "has_document": False},
        "meta": {"external_message_id": f"{channel}-1", "ad_channel": channel, "ad_id": None,
                 "original_media_type": "text", "chat_type": None, "user_id": None, "raw": {}},
        "prefilled_data": {"model": None, "parts_owner": None},
    }
