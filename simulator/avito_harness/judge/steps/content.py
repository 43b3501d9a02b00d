"""Steps about content and order: a message carried whole at Avito's longest, and a chat's messages in the order
they were written (also a backlog n8n could not take for a while)."""

from __future__ import annotations

from pytest_bdd import parsers, when

from avito_harness.judge.defects import expect
from avito_harness.judge.step_params import PARAM_TYPES

from .checks import check, needs
from .harness import Harness
from .observe import received
from .when import operator_answers, say

__all__ = ["long_text"]

#: What a long text is made of: two scripts, quotes, an emoji outside the basic plane, markup, an entity and a
#: line break, so a gateway that cuts, escapes, decodes or drops anything shows it.
PIECE = "Аккумулятор 12V 60Ah «Тюмень» — цена? 👍 \"ok\" & <b>ё</b> &amp;\n"


def long_text(n: int) -> str:
    """``n`` characters (code points, as Avito counts its 1000-character limit)."""
    return (PIECE * (n // len(PIECE) + 1))[:n]


def _difference(got: str, want: str) -> str:
    """Where two texts part, in a few words."""
    if want.startswith(got):
        return f"cut to {len(got)} of {len(want)} characters"
    at = next((i for i, (a, b) in enumerate(zip(got, want, strict=False)) if a != b), min(len(got), len(want)))
    return f"{len(got)} characters instead of {len(want)}, first different at {at}: {got[at:at + 20]!r} for {want[at:at + 20]!r}"


@when(parsers.parse("the customer writes a message of {n:Positive} characters", extra_types=PARAM_TYPES))
def _(harness: Harness, n: int) -> None:
    say(harness, long_text(n))
    harness.customer_messages += 1


@when(parsers.parse("n8n sends a message of {n:Positive} characters through the gateway", extra_types=PARAM_TYPES))
def _(harness: Harness, n: int) -> None:
    harness.seen.sent_text = long_text(n)
    harness.send(harness.seen.sent_text)


@check("the message text is every character written")
def _(harness: Harness) -> None:
    got = str(needs(harness.seen.message, "the normalized message n8n received").get("text"))
    want = harness.seen.written[-1]
    expect(got == want, "text_changed", f"n8n received another text than the customer wrote: {_difference(got, want)}")


@check("the customer's chat shows the whole message")
def _(harness: Harness) -> None:
    want = needs(harness.seen.sent_text, "the text n8n sent")
    texts = harness.chat_texts()
    if want in texts:
        return
    near = [t for t in texts if t and (want.startswith(t) or t[:40] == want[:40])]
    expect(not near, "text_changed", f"the chat shows another text than n8n sent: {_difference(near[-1], want)}"
           if near else "")
    expect(False, "send_failed", "the message n8n sent is not in the chat")


@check("n8n received them in the order written")
def _(harness: Harness) -> None:
    order: list[str] = []
    for r in received(harness):
        text = r["body"].get("text") if isinstance(r["body"], dict) else None
        if isinstance(text, str) and text in harness.seen.written and text not in order:
            order.append(text)
    written = [t for t in harness.seen.written if t in order]
    expect(order == written, "order_broken", f"n8n received {order}; the customer wrote {harness.seen.written}: a "
           "chat's messages must reach n8n in the order written (the AI reads them as a conversation)")


#: An answer an interpolated SQL query cannot hold: an apostrophe, both quotes, a backslash, an emoji outside the
#: basic plane and a line break (SPEC's messages_history row must keep it as the operator wrote it).
AWKWARD = "Да, O'Brien's \"доставка\" в C:\\склад 🚚\nзавтра к 10:00"


@when("the operator answers with an apostrophe, quotes, a backslash, an emoji and a new line")
def _(harness: Harness) -> None:
    operator_answers(harness, AWKWARD)
    harness.seen.sent_text = AWKWARD


@check("the customer's chat and messages_history hold that answer as written")
def _(harness: Harness) -> None:
    texts = harness.chat_texts()
    near = [t for t in texts if t and t != AWKWARD and t[:8] == AWKWARD[:8]]
    expect(AWKWARD in texts or not near, "text_changed",
           f"the chat shows another text than the operator wrote: {_difference(near[-1], AWKWARD)}" if near else "")
    (appeal,) = harness.n8n.appeals()
    rows = [h for h in harness.n8n.history() if h["appeal_id"] == appeal["id"]]
    kept = [r for r in rows if r.get("text") == AWKWARD]
    refused = (harness.seen.operator or {}).get("error")
    expect(bool(kept), "history_row_wrong", "no messages_history row holds the operator's answer as written "
           f"(rows: {[(r.get('message_type'), r.get('text')) for r in rows][:3]})"
           + (f"; the workflows said: {refused}" if refused else "")
           + ": an apostrophe, a quote, a backslash, an emoji or a line break broke or changed it")
    if kept:
        row = kept[0]
        expect((row.get("message_type"), row.get("channel")) == ("operator", "avito"), "history_row_wrong",
               f"the answer's row has message_type {row.get('message_type')!r} and channel {row.get('channel')!r}; "
               "SPEC's row has 'operator' and 'avito'")
    expect(AWKWARD in texts, harness.send_defect, "the operator's answer is not in the customer's chat"
           + (f": {refused}" if refused else ""))
