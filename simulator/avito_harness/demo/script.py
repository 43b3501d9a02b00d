"""``avito-harness demo``: a scripted conversation played in the terminal, every hop shown as it happens."""

from __future__ import annotations

import time as _perf
from collections.abc import Callable
from dataclasses import dataclass

from rich.console import Console

from avito_harness.fakes.settings import DEMO_USER_ID
from avito_harness.judge.transcript import Hop, transcript
from avito_harness.stack.local import Stack
from avito_harness.waiting import wait_until

__all__ = ["DemoStep", "SCRIPT", "play"]

USER = DEMO_USER_ID
HOP_STYLE = {
    "customer -> Avito": "bold cyan", "Avito -> gateway": "yellow", "gateway -> n8n": "magenta",
    "n8n flows": "green", "gateway -> Avito": "blue", "seller -> Avito": "bold blue", "n8n -> STT": "green",
    "n8n -> Avito media": "green", "avito -> Avito": "white",
}


@dataclass(frozen=True)
class DemoStep:
    title: str
    kind: str  # text | image | voice
    text: str | None = None
    fault: str | None = None  # "avito_429": Avito refuses the answer once, with Retry-After


SCRIPT = (
    DemoStep("The customer asks about a battery", "text", "Здравствуйте! Аккумулятор 60Ah ещё в наличии?"),
    DemoStep("The customer sends a photo of the old one", "image"),
    DemoStep("A voice message", "voice", "какая гарантия на аккумулятор"),
    DemoStep("Avito rate-limits the answer once (429 + Retry-After), the gateway waits and retries", "text",
             "Сколько стоит со сдачей старого?", fault="avito_429"),
)


def _print_hops(console: Console, hops: list[Hop], start: float) -> None:
    for hop in hops:
        style = HOP_STYLE.get(hop.hop, "white")
        console.print(f"  {(hop.at - start) * 1000:8.0f} ms  [{style}]{hop.hop:<20}[/{style}] {hop.what}",
                      highlight=False)


def play(stack: Stack, console: Console, *, script: tuple[DemoStep, ...] = SCRIPT, timeout: float = 30.0,
         stop: Callable[[], bool] = lambda: False) -> bool:
    """Play ``script``; True when every step ended with the answer in the customer's chat."""
    chat_id = next(c["id"] for c in stack.avito.account(USER)["chats"] if c["chat_type"] == "u2i")
    shown = len(transcript(stack.apps))
    ok = True
    for n, step in enumerate(script, 1):
        console.rule(f"[bold]{n}. {step.title}")
        if step.fault == "avito_429":
            stack.avito.add_fault("rate_limited_429_retry_after", route="POST /messenger/v1/accounts/*/chats/*/messages",
                                  headers={"Retry-After": "2"}, required=False)
        sent_before = len(stack.n8n.events("sent"))
        started = _perf.perf_counter()
        extra = {"type": step.kind} if step.kind != "text" else {}
        stack.avito.customer_says(USER, chat_id, step.text, **extra)
        def answered_or_stopped(started: float = started, sent_before: int = sent_before) -> bool:
            nonlocal shown
            hops = transcript(stack.apps)
            _print_hops(console, hops[shown:], started)
            shown = len(hops)
            return stop() or len(stack.n8n.events("sent")) > sent_before

        wait_until(answered_or_stopped, timeout, interval=0.1, what="the answer")
        answered = len(stack.n8n.events("sent")) > sent_before
        if answered:
            _print_hops(console, transcript(stack.apps)[shown:], started)
            shown = len(transcript(stack.apps))
        elapsed = _perf.perf_counter() - started
        if answered:
            answer = stack.avito.chat(USER, chat_id)["messages"][-1]["content"].get("text", "")
            console.print(f"  [bold green]answered in {elapsed:.1f} s:[/bold green] {answer}", highlight=False)
        else:
            ok = False
            console.print(f"  [bold red]no answer within {timeout:g} s[/bold red]")
    return ok
