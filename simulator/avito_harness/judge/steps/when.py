"""When steps: what the customer, Avito, the seller and n8n do."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
from pytest_bdd import parsers, when

from avito_harness.fakes.avito.media import png_bytes
from avito_harness.judge.bounded_http import RequestDeadlineHit
from avito_harness.judge.defects import expect
from avito_harness.judge.diagnosis import UNKNOWN_CHAT
from avito_harness.judge.environment import USER, WINDOW_CAP
from avito_harness.judge.verdict import CannotJudge, Category

from .harness import Harness

__all__ = ["operator_answers", "say"]  # besides the step definitions: what other step modules reuse
from avito_harness.fakes.settings import WEBHOOK_PATH
from avito_harness.judge.step_params import PARAM_TYPES

from .observe import dropped, events, failed_runs, settle, window_closes

#: The most requests the harness spends to find a gateway's announced limit (a gateway announcing 1e9 a second
#: is not believed to the last request: the check says it cannot judge past this cap).
SPEND_CAP = 1000
#: The longest single move of the virtual clock while time passes (seconds).
STEP = 60.0


@when("the gateway subscribes its webhook at Avito")
def _(harness: Harness) -> None:
    harness.response = harness.api.post("/api/webhook/subscribe", json={"url": harness.gateway_url + WEBHOOK_PATH})


def say(harness: Harness, text: str | None = None, **fields: Any) -> dict[str, Any]:
    """A message in the chat from its customer (or the seller, or Avito), delivered to whatever is subscribed. With
    nothing subscribed the message cannot reach any gateway: the scenario is missing its subscription step."""
    said: dict[str, Any] = harness.avito.customer_says(USER, harness.chat_id, text, **fields)
    if text is not None and fields.get("author") != "system":
        harness.seen.written.append(text)
    if not said.get("deliveries") and not harness.avito.account(USER)["subscriptions"]:
        raise CannotJudge(Category.FEATURE, "a message was written in the chat, but no webhook URL is subscribed at "
                          "Avito, so no gateway can hear of it: add \"Given the gateway is subscribed to Avito "
                          "webhooks\" before it")
    return said


@when(parsers.parse('the customer writes "{text}"'))
def _(harness: Harness, text: str) -> None:
    say(harness, text)
    harness.customer_messages += 1


@when("the customer sends a photo")
def _(harness: Harness) -> None:
    harness.seen.photo = say(harness, type="image")["message"]
    harness.customer_messages += 1


@when(parsers.parse('the customer sends a voice message saying "{text}"'))
def _(harness: Harness, text: str) -> None:
    say(harness, text, type="voice")
    harness.customer_messages += 1


@when(parsers.parse('the seller replies from the Avito app "{text}"'))
def _(harness: Harness, text: str) -> None:
    say(harness, text, author="account")


@when("Avito posts a system message")
def _(harness: Harness) -> None:
    say(harness, "[Системное сообщение] Покупатель посмотрел телефон", author="system")


@when("a webhook with a broken JSON body reaches the gateway")
def _(harness: Harness) -> None:
    """What a proxy cutting a body short, or an attacker, delivers to the subscribed URL."""
    subscribed = [str(s.get("url")) for s in harness.avito.account(USER)["subscriptions"]
                  if str(s.get("url", "")).startswith(harness.gateway_url)]
    url = subscribed[0] if subscribed else harness.gateway_url + WEBHOOK_PATH
    harness.seen.webhook_answers = [
        harness.http.post(url, content=body, headers={"Content-Type": "application/json"})
        for body in (b'{"id": "broken", "payload": {"type": "message", "value": {"id": ', b"not json at all",
                     b'{"payload": [1, 2, 3]}')
    ]


@when(parsers.parse('n8n sends "{text}" through the gateway with idempotency key "{key}"'))
def _(harness: Harness, text: str, key: str) -> None:
    harness.send(text, key)


@when(parsers.parse('n8n sends "{text}" through the gateway'))
def _(harness: Harness, text: str) -> None:
    harness.send(text)


@when("n8n lists the chats through the gateway")
def _(harness: Harness) -> None:
    harness.response = harness.api.get("/api/chats")


@when("n8n marks the chat read through the gateway")
def _(harness: Harness) -> None:
    harness.response = harness.api.post(f"/api/chats/{harness.chat_id}/read")


@when("n8n reads the chat's history through the gateway")
def _(harness: Harness) -> None:
    harness.response = harness.api.get(f"/api/chats/{harness.chat_id}/messages")


@when("n8n sends a message without text through the gateway")
def _(harness: Harness) -> None:
    harness.response = harness.api.post("/api/messages/send", json={"chat_id": harness.chat_id})


@when("n8n sends a photo through the gateway")
def _(harness: Harness) -> None:
    image = png_bytes("promo", 320, 240)
    harness.response = first_accepted(harness, [
        lambda: harness.api.post("/api/messages/send/image", data={"chat_id": harness.chat_id},
                                 files={"file": ("promo.png", image, "image/png")}),
        # SPEC names the operation, not its body: under --profile seed, other forms a gateway may take
        lambda: harness.api.post("/api/messages/send/image", data={"chat_id": harness.chat_id},
                                 files={"image": ("promo.png", image, "image/png")}),
        lambda: harness.api.post("/api/messages/send/image", json={"chat_id": harness.chat_id,
                                                                   "image_url": photo_url(harness)}),
    ])


@when(parsers.parse('n8n sends "{text}" to every chat and one unknown chat'))
def _(harness: Harness, text: str) -> None:
    chats = [c["id"] for c in harness.avito.account(USER)["chats"]]
    harness.seen.bulk_chats = chats
    chat_ids = [*chats, UNKNOWN_CHAT]
    harness.response = first_accepted(harness, [
        lambda: harness.api.post("/api/messages/send/bulk", json={"chat_ids": chat_ids, "text": text}),
        lambda: harness.api.post("/api/messages/send/bulk", json={"messages": [{"chat_id": c, "text": text}
                                                                               for c in chat_ids]}),
    ])


@when(parsers.parse("n8n makes {n:Positive} requests within a minute", extra_types=PARAM_TYPES))
def _(harness: Harness, n: int) -> None:
    harness.seen.statuses = [harness.api.get("/api/token") for _ in range(min(n, SPEND_CAP))]


def first_accepted(harness: Harness, forms: list[Callable[[], httpx.Response]]) -> httpx.Response:
    """Our contract's form under --profile full; under seed (SPEC names the operation, not its body) each form in
    turn until one is not refused as a bad request (a 400 or 422 is "not this form")."""
    answer = forms[0]()
    for form in forms[1:] if harness.env.options.profile == "seed" else []:
        if answer.status_code not in (400, 415, 422):
            break
        answer = form()
    return answer


def photo_url(harness: Harness) -> str:
    """A link to a real image (the fake Avito serves them): for a gateway that sends images by URL."""
    return f"{harness.stack.urls['avito']}/media/images/promo/640x480.png"


def _announced(info: dict[str, Any], key: str, default: float) -> float:
    value = info.get(key)
    if value is None:
        return default  # SPEC's figure when the gateway does not announce its own
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    expect(number == number and number > 0, "contract_violation", f"/info {key} is {value!r}, not a positive number")
    return number


@when("n8n spends the gateway's announced rate limit")
def _(harness: Harness) -> None:
    answer = harness.http.get(f"{harness.gateway_url}/info")
    try:
        info = answer.json() if answer.status_code == 200 else {}
    except ValueError:
        info = {}
    info = info if isinstance(info, dict) else {}
    limit, window = _announced(info, "rate_limit_requests", 100), _announced(info, "rate_limit_window", 60)
    if limit > SPEND_CAP:
        raise CannotJudge(Category.NOT_JUDGED, f"the gateway announces {limit:,.0f} requests per {window:g} s; the "
                          f"harness spends at most {SPEND_CAP:,} requests to find a limit (start it with a smaller "
                          "RATE_LIMIT_REQUESTS, as --gateway-cmd does)")
    if harness.mode != "embedded" and window > WINDOW_CAP:
        raise CannotJudge(Category.NOT_JUDGED, f"the gateway announces a {window:g} s window: longer than the "
                          f"{WINDOW_CAP:g} s the harness waits in real time (start it with RATE_LIMIT_WINDOW=2, as "
                          "--gateway-cmd does)")
    harness.pass_time(window + 0.2)  # whatever earlier scenarios spent has left the window
    harness.seen.limit, harness.seen.window = int(limit), window
    harness.seen.spent_from = max((e["id"] for e in harness.avito.journal()), default=0)
    statuses = harness.seen.statuses = []
    # the chats and one chat's history in turn: every call that reaches Avito counts, whichever operation it is
    paths = ("/api/chats", f"/api/chats/{harness.chat_id}/messages")
    for n in range(int(limit) + 1):
        started = time.monotonic()
        try:
            statuses.append(harness.api.get(paths[n % 2]))
        except RequestDeadlineHit:  # held past the deadline: the limiter may never reopen (the Then steps judge it)
            harness.seen.held_past_deadline = True
            break
        harness.seen.last_wait = time.monotonic() - started
        if statuses[-1].status_code == 429:
            break


@when(parsers.parse("{seconds:Count} seconds pass", extra_types=PARAM_TYPES))
def _(harness: Harness, seconds: int) -> None:
    """In steps of at most a minute, the gateway doing what is due after each: hours pass for it as hours do, one
    retry after another, not as one jump that fires a single retry."""
    left = float(seconds)
    while left > 0:
        step = min(STEP, left)
        harness.stack.advance(step)
        left -= step
        if harness.mode == "embedded":
            settle(harness)


@when("n8n is back")
def _(harness: Harness) -> None:
    harness.n8n.clear_faults()


@when("the batching window closes")
def _(harness: Harness) -> None:
    expected = harness.customer_messages
    batched = events(harness, "batched", 10, expected)
    expect(len(batched) >= expected, dropped(harness),
           f"{len(batched)} of {expected} message(s) reached the Universal Batcher{failed_runs(harness)}")
    window_closes(harness)


@when(parsers.parse('a {channel} client writes "{text}"'))
def _(harness: Harness, channel: str, text: str) -> None:
    harness.n8n.inject(_normalized(channel, text))
    harness.customer_messages += 1


def operator_answers(harness: Harness, text: str) -> None:
    """The operator answers the scenario's one appeal through the workflows (Message Router, BAT OUT)."""
    (appeal,) = harness.n8n.appeals()
    harness.seen.operator = harness.n8n.answer(appeal["id"], text)
    if harness.seen.operator.get("success") is False:
        harness.send_defect = "workflow_send_refused"  # the Message Router / BAT OUT said so itself


@when(parsers.parse('the operator answers "{text}"'))
def _(harness: Harness, text: str) -> None:
    operator_answers(harness, text)


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
