"""Then steps about where messages ended up: n8n (normalized messages, the CRM) and the customer's Avito chat."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from pytest_bdd import parsers

from avito_harness.fakes.n8n.workflows import from_seller
from avito_harness.judge.defects import expect
from avito_harness.judge.environment import USER
from avito_harness.judge.step_params import PARAM_TYPES
from avito_harness.judge.verdict import CannotJudge, Category
from avito_harness.stack.control_clients import SimClientError

from .checks import check, needs
from .harness import Harness

__all__: list[str] = []  # step definitions only: pytest-bdd finds them, nothing is imported from here
from .observe import (
    answer_sent,
    avito_texts,
    check_forwarded,
    dropped,
    events,
    failed_runs,
    forwarded_with_text,
    received,
    settle,
    window_closes,
)


@check(parsers.parse("n8n receives {n:Count} normalized message", extra_types=PARAM_TYPES))
@check(parsers.parse("n8n receives {n:Count} normalized messages", extra_types=PARAM_TYPES))
def _(harness: Harness, n: int) -> None:
    if n > harness.customer_messages:
        raise CannotJudge(Category.FEATURE, f"the scenario expects {n} message(s) at n8n, but the customer wrote "
                          f"{harness.customer_messages} in it")
    try:
        harness.n8n.wait_for(n, timeout=harness.forward_wait, path="avito")
    except SimClientError:
        pass  # fewer arrived: the check below names what is missing
    settle(harness)
    harness.seen.message = next(reversed(check_forwarded(harness, n)), None)


@check(parsers.parse("n8n receives {n:Count} normalized message within {seconds:Positive} seconds",
                      extra_types=PARAM_TYPES))
@check(parsers.parse("n8n receives {n:Count} normalized messages within {seconds:Positive} seconds",
                      extra_types=PARAM_TYPES))
def _(harness: Harness, n: int, seconds: int) -> None:
    """Real time for a foreign gateway (its own retry timing), the virtual clock for ours."""
    for _ in range(seconds):
        if harness.mode == "embedded":
            settle(harness)
        if len(harness.n8n.received("avito")) >= n and not harness.timers:
            break
        harness.pass_time(1)
    settle(harness)
    harness.seen.message = next(reversed(check_forwarded(harness, n)), None)


@check("n8n has received nothing")
def _(harness: Harness) -> None:
    settle(harness)
    assert harness.n8n.received("avito") == []


@check(parsers.parse('the message text is "{text}"'))
def _(harness: Harness, text: str) -> None:
    received = needs(harness.seen.message, "the normalized message n8n received")["text"]
    expect(received == text, "text_changed", f"n8n received the text {received!r}; the customer wrote {text!r}")


@check(parsers.parse('n8n receives the seller\'s reply "{text}" marked as the seller\'s'))
def _(harness: Harness, text: str) -> None:
    message = forwarded_with_text(harness, text)
    expect(message is not None, "seller_reply_lost", f'the seller\'s reply "{text}" typed in the Avito app never '
           "reached n8n: the CRM's history misses what the seller told the customer")
    assert message is not None
    expect(from_seller(message), "seller_reply_unmarked", f'the seller\'s reply "{text}" reached n8n as a customer '
           "message (meta.author_role is not \"seller\" and external_user_id is not meta.user_id): the AI would answer it")


@check(parsers.parse('n8n receives the customer\'s message "{text}"'))
def _(harness: Harness, text: str) -> None:
    message = forwarded_with_text(harness, text)
    expect(message is not None, "message_lost", f'the customer\'s message "{text}" never reached n8n')
    assert message is not None
    expect(not from_seller(message), "seller_reply_unmarked", "the customer's message is marked as the seller's")


@check("n8n received nothing else")
def _(harness: Harness) -> None:
    settle(harness)
    texts = avito_texts(harness)
    expect(len(texts) == len(set(texts)), "duplicate_forwarded", f"n8n got a message twice: {texts}")
    others = [t for t in texts if t not in harness.seen.written]
    expect(not others, "echo_forwarded", f"n8n got {others}: the gateway's own send and Avito's system message are "
           "not messages of the customer or the seller")


@check(parsers.parse('messages_history keeps the seller\'s reply "{text}" as the operator\'s'))
def _(harness: Harness, text: str) -> None:
    expect(forwarded_with_text(harness, text) is not None, "seller_reply_lost",
           f'the seller\'s reply "{text}" never reached n8n')
    events(harness, "seller_reply", 5)
    rows = [h for h in harness.n8n.history() if h["text"] == text]
    expect([r["message_type"] for r in rows] == ["operator"], "seller_reply_unmarked",
           f"messages_history holds {rows}: n8n could not tell the seller's reply from the customer's message")


@check("the seller's reply did not make the AI answer again")
def _(harness: Harness) -> None:
    window_closes(harness)
    settle(harness)
    ai_rows = [h for h in harness.n8n.history() if h["message_type"] == "ai"]
    expect(len(ai_rows) == 1, "seller_reply_unmarked", f"the AI answered {len(ai_rows)} times: the seller's reply "
           "was taken for the customer's")


@check("the message names the customer, the ad and the chat type")
def _(harness: Harness) -> None:
    message = needs(harness.seen.message, "the normalized message n8n received")
    chat = harness.avito.chat(USER, harness.chat_id)
    customer = next(u for u in chat["users"] if u["id"] != USER)
    expect(message["client_name"] == customer["name"], "wrong_client_name",
           f"client_name is {message['client_name']!r}, the customer is {customer['name']!r}")
    meta = message.get("meta") or {}
    written = next(m for m in reversed(chat["messages"]) if m["author_id"] == customer["id"])
    places = {"external_user_id": (message.get("external_user_id"), str(customer["id"])),
              "external_chat_id": (message.get("external_chat_id"), harness.chat_id),
              "meta.user_id": (meta.get("user_id"), USER),
              "meta.external_message_id": (meta.get("external_message_id"), written["id"]),
              "meta.ad_id": (meta.get("ad_id"), f"item_{chat['context']['value']['id']}"),
              "meta.chat_type": (meta.get("chat_type"), "u2i")}
    wrong = {k: got for k, (got, want) in places.items() if str(got) != str(want)}
    expect(not wrong, "ids_misplaced", f"{wrong}; SPEC puts the customer's id in external_user_id, our account's in "
           "meta.user_id, Avito's message id in meta.external_message_id, the item as item_<id> in meta.ad_id")
    stamp = message.get("timestamp")
    expect(isinstance(stamp, str) and _iso(stamp), "timestamp_wrong",
           f"timestamp is {stamp!r}: SPEC's is an ISO 8601 date and time (2025-12-01T17:30:00)")
    expect(_same_moment(str(stamp), float(written["created"])), "timestamp_wrong",
           f"timestamp is {stamp!r}; Avito says the message was written at "
           f"{datetime.fromtimestamp(written['created'], UTC).isoformat()} (created {written['created']}, "
           "seconds since 1970)")


@check("the message carries the photo in its largest size")
def _(harness: Harness) -> None:
    media = needs(harness.seen.message, "the normalized message n8n received")["media"]
    largest = needs(harness.seen.photo, "the photo the customer sent")["content"]["image"]["sizes"]["1280x960"]
    expect(media["has_images"] and media["images"] == [{"url": largest}], "media_link_missing",
           f"the photo's largest size {largest} is not in media.images: {media.get('images')}")


@check(parsers.parse('the message has a voice link that plays "{text}"'))
def _(harness: Harness, text: str) -> None:
    media = needs(harness.seen.message, "the normalized message n8n received")["media"]
    expect(media["has_voice"], "media_link_missing", "media.has_voice is false for a voice message")
    expect(media["voice_url"], "media_link_missing", "the voice message was forwarded without voice_url")
    audio = harness.http.get(media["voice_url"])
    expect(audio.status_code == 200 and text.encode() in audio.content, "media_link_missing",
           "the voice link does not play the message")


@check(parsers.parse('n8n transcribed the voice message as "{text}"'))
def _(harness: Harness, text: str) -> None:
    voices = [r["body"] for r in received(harness) if isinstance(r["body"], dict)
              and (r["body"].get("media") or {}).get("has_voice")]
    needs(next((v for v in voices if (v.get("media") or {}).get("voice_url")), None), "a voice message with its link")
    found = events(harness, "transcribed", 15)
    asked = harness.stack.stt.journal()
    expect(bool(found), "voice_not_transcribed", "n8n never transcribed the voice message: speech-to-text was "
           + (f"asked {len(asked)} time(s) ({asked[0]['method']} {asked[0]['path']} -> {asked[0]['status']})" if asked
              else "never asked") + failed_runs(harness))
    assert found[0]["data"]["text"] == text, f"transcribed as {found[0]['data']['text']!r}, said {text!r}"


@check("the gateway waited out Avito's Retry-After before sending again")
def _(harness: Harness) -> None:
    """Avito said when to come back: a retry sooner (a fixed backoff that ignores Retry-After) is refused again and,
    at the real Avito, spends the account's limit."""
    sends = [e for e in harness.avito.journal(method="POST") if e["path"].endswith("/messages")]
    limited = next((i for i, e in enumerate(sends) if e.get("status") == 429), None)
    refused = needs(sends[limited] if limited is not None else None, "Avito's 429 for the send")
    again = needs(sends[limited + 1] if limited is not None and limited + 1 < len(sends) else None,
                  "a send after the 429")
    clock = "time" if harness.mode == "embedded" else "seen_at"  # the virtual clock for ours, real time otherwise
    waited = float(again[clock]) - float(refused[clock])
    expect(waited >= 0.9 * harness.seen.retry_after, "retry_after_ignored",
           f"Avito answered 429 with Retry-After: {harness.seen.retry_after:g}; the gateway sent again "
           f"{waited:.2f} s later")


@check("no send was repeated without checking the chat first")
def _(harness: Harness) -> None:
    """After an ambiguous failure (a 5xx, a lost answer) the message may be in the chat already: posting it again
    blindly is how customers get the same message twice."""
    calls = [e for e in harness.avito.journal() if e["path"].startswith("/messenger/")]
    blind, unsure = 0, False  # unsure: the last send's fate is unknown and the chat was not read since
    for call in calls:
        if call["method"] == "POST" and call["path"].endswith("/messages"):
            blind += unsure
            status = call.get("status") or 0
            unsure = status >= 500 or status == 0 or (status < 400 and call.get("fault") is not None)
        elif call["method"] == "GET" and "/messages" in call["path"]:
            unsure = False
    expect(blind == 0, "send_posted_twice", f"the send was posted again {blind} time(s) after Avito's ambiguous "
           "answer without reading the chat first: had Avito processed it, the customer would see it twice")


@check(parsers.parse('the customer\'s chat shows "{text}" once'))
def _(harness: Harness, text: str) -> None:
    count = harness.chat_texts().count(text)
    expect(count <= 1, "send_posted_twice", f'"{text}" is in the chat {count} times')
    expect(count == 1, harness.send_defect, f'"{text}" is not in the chat')


@check(parsers.parse('the customer\'s chat shows "{text}"'))
def _(harness: Harness, text: str) -> None:
    refused = (harness.seen.operator or {}).get("error")
    expect(text in harness.chat_texts(), harness.send_defect, f'"{text}" is not in the customer\'s chat'
           + (f": the operator's answer failed: {refused}" if refused else ""))


@check("Avito saw the chat marked read")
def _(harness: Harness) -> None:
    response = needs(harness.response, "the gateway's answer")
    marked = [e for e in harness.avito.journal(method="POST") if e.get("status") == 200
              and re.fullmatch(rf"/messenger/v\d+/accounts/[^/]+/chats/{re.escape(harness.chat_id)}/read", e["path"])]
    expect(marked, "read_not_forwarded", f"the gateway answered {response.status_code} {response.text[:120]} but never "
           "marked the chat read at Avito")


@check("every webhook delivery was answered within Avito's 2 seconds")
def _(harness: Harness) -> None:
    late = [d for d in harness.avito.deliveries(account=USER) if d.get("status") != 200]
    expect(not late, "webhook_too_slow", f"Avito's webhook got no 200 within its 2 s ({late[0].get('error') or late[0].get('status')}"
           "): the gateway made Avito wait for n8n; Avito retries and then unsubscribes such a URL" if late else "")


@check("the history holds the chat's messages")
def _(harness: Harness) -> None:
    """SPEC names the operation (chat history), not its answer: every text of the chat must be in it, as sent."""
    response = needs(harness.response, "the gateway's answer")
    expect(response.status_code == 200, "history_unreadable", f"GET /api/chats/{{id}}/messages answered "
           f"{response.status_code} {response.text[:200]}")
    try:
        words = set(_strings(response.json()))
    except ValueError:
        words = set()
    texts = [t for t in harness.chat_texts() if t]
    missing = [t for t in texts if t not in words]
    expect(not missing, "history_unreadable", f"the history through the gateway lacks {len(missing)} of the chat's "
           f"{len(texts)} text(s): {missing[:3]}")


#: Time zones a timestamp without one may be in: UTC, this machine's, and Moscow's (Avito's own).
NAIVE_ZONES = (UTC, None, timezone(timedelta(hours=3)))


def _same_moment(text: str, created: float) -> bool:
    """``text`` names the moment ``created`` (to the second): with its own offset, or without one in a zone a
    gateway may reasonably use. A seconds-for-milliseconds mix-up lands decades away and is never taken."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return False
    if moment.tzinfo is not None:
        return abs(moment.timestamp() - created) <= 1
    return any(abs(moment.replace(tzinfo=zone).timestamp() - created) <= 1 if zone is not None
               else abs(moment.timestamp() - created) <= 1 for zone in NAIVE_ZONES)


def _iso(text: str) -> bool:
    try:
        datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return False
    return "T" in text


def _strings(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [s for v in node.values() for s in _strings(v)]
    if isinstance(node, list):
        return [s for v in node for s in _strings(v)]
    return [node] if isinstance(node, str) else []


@check("the customer's chat ends with a photo")
def _(harness: Harness) -> None:
    assert harness.avito.chat(USER, harness.chat_id)["messages"][-1]["type"] == "image"


@check(parsers.parse('every known chat shows "{text}"'))
def _(harness: Harness, text: str) -> None:
    for chat_id in harness.seen.bulk_chats:
        expect(harness.chat_texts(chat_id)[-1] == text, harness.send_defect, chat_id)


@check("the customer's chat shows the AI's answer")
@check("the customer's chat shows the AI's answer once")
def _(harness: Harness) -> None:
    row = answer_sent(harness)
    count = harness.chat_texts().count(row["text"])
    expect(count <= 1, "send_posted_twice", f"the AI's answer is in the chat {count} times")
    expect(count == 1, "send_failed", "the AI's answer is not in the chat")


@check(parsers.parse('messages_history has a sent "{kind}" row for the appeal'))
def _(harness: Harness, kind: str) -> None:
    (appeal,) = harness.n8n.appeals()
    rows = [h for h in harness.n8n.history() if h["appeal_id"] == appeal["id"]]
    assert [(r["message_type"], r["status"], r["channel"]) for r in rows] == [(kind, "sent", "avito")], rows
    assert rows[0]["external_message_id"] in [m["id"] for m in harness.avito.chat(USER, harness.chat_id)["messages"]]


@check(parsers.parse("one appeal holds {n:Positive} message", extra_types=PARAM_TYPES))
@check(parsers.parse("one appeal holds {n:Positive} messages", extra_types=PARAM_TYPES))
def _(harness: Harness, n: int) -> None:
    events(harness, "appeal_created", 10)
    appeals = harness.n8n.appeals()
    expect(appeals, dropped(harness), f"no appeal after the batching window{failed_runs(harness)}")
    expect(len(appeals) == 1, "unclassified", f"{len(appeals)} appeals after the batching window: {appeals}")
    batches = harness.n8n.appeal(appeals[0]["id"])["batches"]
    held = sum(len(b["messages"]) for b in batches)
    expect(held >= n, dropped(harness), f"the appeal holds {held} message(s), {n} were written{failed_runs(harness)}")
    expect(held == n and len(batches) == 1, "unclassified", f"the appeal holds {held} message(s) in {len(batches)} "
           f"batch(es), {n} in one batch were expected: {batches}")
    appeal = appeals[0]
    harness.seen.appeal = harness.n8n.appeal(appeal["id"])


@check(parsers.parse('the appeal\'s text contains "{text}"'))
def _(harness: Harness, text: str) -> None:
    assert text in needs(harness.seen.appeal, "the appeal")["batches"][0]["text"]


@check("the appeal waits for an operator")
def _(harness: Harness) -> None:
    events(harness, "waiting_operator", 10)
    appeals = harness.n8n.appeals()
    assert len(appeals) == 1, f"{len(appeals)} appeal(s): {appeals}"
    (appeal,) = appeals
    assert appeal["status"] == "waiting_operator" and harness.n8n.history() == []


@check(parsers.parse("the {channel} outbound stub got the answer"))
def _(harness: Harness, channel: str) -> None:
    events(harness, "stub_sent", 10)
    assert [s["channel"] for s in harness.n8n.stubs()] == [channel]


@check("nothing was sent to Avito")
def _(harness: Harness) -> None:
    assert harness.avito.journal(method="POST", path="/messenger/v1/*") == []
