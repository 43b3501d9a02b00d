"""What the steps read back from the fakes: n8n's side (received messages, flow events, the CRM) and settling."""

from __future__ import annotations

import re
from typing import Any

from avito_harness.fakes.reasons import Reason
from avito_harness.judge.defects import Defect, expect
from avito_harness.judge.environment import USER
from avito_harness.waiting import pause, wait_until

from .harness import Harness

__all__ = ["answer_sent", "avito_texts", "check_forwarded", "dropped", "events", "failed_runs", "first_of",
           "forwarded_with_text", "probe_refused", "received", "settle", "subscriptions_asked", "window_closes"]

SETTLE = 0.5  # real seconds a foreign gateway gets to forward anything more


#: How long a real n8n may take to finish what it runs before "it did not happen" is concluded (a loaded machine
#: runs n8n slowly: the conclusion waits for n8n to be idle, not for a fixed time).
N8N_IDLE_LIMIT = 60.0


def _n8n_idle(harness: Harness) -> None:
    """With a real n8n: wait until it has run something for this scenario and nothing runs any more, so what has
    not happened will not (by effect, not by time: a loaded machine runs n8n slowly)."""
    if harness.n8n.flows().get("engine") != "n8n":
        return
    limit = max(1.0, min(N8N_IDLE_LIMIT, harness.bounds.remaining() - 5))
    wait_until(lambda: harness.n8n.events("execution"), limit, interval=0.25, what="an n8n execution")
    try:
        harness.n8n.settle(timeout=max(1.0, min(N8N_IDLE_LIMIT, harness.bounds.remaining() - 5)), batches=False)
    except Exception:  # noqa: BLE001 - still busy at the limit: conclude from what there is
        pass


def subscriptions_asked(harness: Harness) -> list[dict[str, Any]]:
    """The gateway's subscription calls at Avito (on any API version: a near miss is served and named)."""
    return [e for e in harness.avito.journal(method="POST") if re.fullmatch(r"/messenger/v\d+/webhook", e["path"])]


def probe_refused(harness: Harness) -> bool:
    """The fake Avito refused the last subscription because the URL did not answer its ``{}`` probe with 200."""
    calls = subscriptions_asked(harness)
    return bool(calls) and (calls[-1].get("extra") or {}).get("reason") == Reason.PROBE_REFUSED


def events(harness: Harness, kind: str, timeout: float, count: int = 1) -> list[dict[str, Any]]:
    """The flow events of ``kind`` once ``count`` happened; else, once n8n is idle (a real n8n) or ``timeout``
    passed (the Python flows), the ones there are."""
    try:
        found: list[dict[str, Any]] = harness.n8n.wait_event(kind, count, timeout=timeout)
    except Exception:  # noqa: BLE001 - the control answers 408 when they did not happen (yet)
        _n8n_idle(harness)
        found = harness.n8n.events(kind)
    return found


def failed_runs(harness: Harness) -> str:
    failed = harness.n8n.failed_executions()
    return f"; {failed[0]['summary']}" if failed else ""


def first_of(harness: Harness, kinds: tuple[str, ...], timeout: float) -> dict[str, Any] | None:
    """The first flow event of one of ``kinds`` (polled in real time, bounded)."""
    def seen() -> list[dict[str, Any]]:
        return [e for e in harness.n8n.events() if e["kind"] in kinds]

    found = wait_until(seen, timeout, interval=0.1, budget=harness.bounds, what=f"a flow event {'/'.join(kinds)}")
    if not found:
        _n8n_idle(harness)
        found = seen()
    return found[0] if found else None


def answer_sent(harness: Harness) -> dict[str, Any]:
    """The messages_history row of the answer BAT OUT Avito sent, or the defect that kept it from Avito."""
    outcome = first_of(harness, ("sent", "send_failed"), timeout=15)
    if outcome is None or outcome["kind"] != "sent":
        refused = [h for h in harness.n8n.history() if h["status"] == "failed"]
        expect(not refused, "workflow_send_refused", f"BAT OUT Avito's send failed: {refused[0]['error'] if refused else ''}"
               f" (messages_history row {refused[0]['id'] if refused else ''}){failed_runs(harness)}")
        expect(not failed_runs(harness), "workflow_failed", f"no answer was sent{failed_runs(harness)}")
        expect(False, "send_failed", "no answer was sent within 15 s and messages_history has no failed row")
    assert outcome is not None
    (row,) = [h for h in harness.n8n.history() if h["id"] == outcome["data"]["history_id"]]
    return dict(row)


def dropped(harness: Harness) -> str:
    """Why messages n8n received never reached the Universal Batcher: a failed run, or a workflow dropped them."""
    if failed_runs(harness):
        return "workflow_failed"
    voices = [r for r in harness.n8n.received("avito") if isinstance(r["body"], dict)
              and (r["body"].get("media") or {}).get("has_voice")]
    if voices and not harness.stack.stt.journal():
        return "voice_not_transcribed"
    return "workflow_dropped_message" if harness.n8n.flows().get("engine") == "n8n" else "unclassified"


def window_closes(harness: Harness) -> None:
    """The Universal Batcher's window passes: on the virtual clock for the Python flows, in real time for n8n."""
    flows = harness.n8n.flows()
    if flows.get("engine") == "n8n":
        harness.n8n.settle(timeout=flows["batch_window"] + 20)
    else:
        harness.stack.advance(flows["batch_window"])


def settle(harness: Harness) -> None:
    """Whatever the gateway is going to forward has been forwarded. Our gateway says so itself (its outbox flush
    waits for deliveries under way and forwards what is due); a foreign gateway gets a short real-time grace."""
    if harness.mode == "embedded":
        assert harness.api.post("/api/outbox/flush").status_code == 200
        return
    pause(SETTLE, budget=harness.bounds, what="the gateway to forward anything more")


def received(harness: Harness) -> list[dict[str, Any]]:
    """What n8n received for this scenario: a late forward of an earlier scenario (a gateway the harness cannot
    restart retrying what an earlier n8n outage held back) names a chat this scenario's Avito does not have."""
    chats = {c["id"] for c in harness.avito.account(USER)["chats"]}
    return [r for r in harness.n8n.received("avito")
            if not isinstance(r["body"], dict) or r["body"].get("external_chat_id") in chats
            or harness.mode == "embedded"]


def avito_texts(harness: Harness) -> list[str]:
    return [str(r["body"].get("text")) for r in received(harness) if isinstance(r["body"], dict)]


def check_forwarded(harness: Harness, n: int) -> list[dict[str, Any]]:
    """n8n holds ``n`` normalized messages from Avito, each once and each valid: every problem is its own finding
    (duplicates do not hide a lost message or a missing link); the messages, each once, for the checks after."""
    bodies = [r["body"] for r in received(harness) if isinstance(r["body"], dict)]
    by_id: dict[str, dict[str, Any]] = {}
    for body in bodies:
        by_id.setdefault(str((body.get("meta") or {}).get("external_message_id")), body)
    repeated = sorted(i for i in by_id if sum(1 for b in bodies
                                             if str((b.get("meta") or {}).get("external_message_id")) == i) > 1)
    if repeated:
        harness.found(Defect("duplicate_forwarded", f"n8n got message(s) {repeated} more than once ({len(bodies)} "
                             "forwards): one Avito message must reach n8n once"))
    if len(by_id) < n:
        harness.found(Defect("message_lost", f"n8n received {len(by_id)} message(s), expected {n}: "
                             f"{avito_texts(harness)}"))
    elif len(by_id) > n:
        harness.found(Defect("echo_forwarded", f"n8n received {len(by_id)} messages, expected {n}: "
                             f"{avito_texts(harness)} (something that is not one of the customer's messages reached it)"))
    errors = [e for r in harness.n8n.invalid() for e in r["schema_errors"]]
    media = [e for e in errors if e.startswith(("media/voice_url", "media/images"))]
    if media:
        harness.found(Defect("media_link_missing", f"n8n got a voice or image message without its link: {media}"))
    if len(errors) > len(media):
        harness.found(Defect("normalized_message_invalid", f"n8n got messages that break the normalized format: "
                             f"{[e for e in errors if e not in media]}"))
    return list(by_id.values())


def forwarded_with_text(harness: Harness, text: str) -> dict[str, Any] | None:
    """The normalized message with this text, once the gateway forwarded it (ours is flushed; a foreign one has
    the harness's forward wait in real seconds)."""

    def found() -> dict[str, Any] | None:
        if harness.mode == "embedded":
            settle(harness)
        hits = [r["body"] for r in received(harness) if isinstance(r["body"], dict) and r["body"].get("text") == text]
        return hits[0] if hits else None

    return wait_until(found, harness.forward_wait if harness.mode != "embedded" else 0, interval=0.1, budget=harness.bounds,
                      what=f"n8n to receive {text!r}")
