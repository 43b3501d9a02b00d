"""A conversation as a story across the hops, built from what the fakes saw.

customer -> fake Avito -> gateway -> n8n -> (flows) -> gateway -> fake Avito,
ordered by when each fake saw it and correlated by message id.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["Hop", "transcript", "render"]


@dataclass(frozen=True)
class Hop:
    at: float
    hop: str
    what: str


def _short(text: str | None, n: int = 60) -> str:
    if not text:
        return ""
    text = text.replace("\n", " / ")
    return f' "{text[:n]}{"…" if len(text) > n else ""}"'


def transcript(apps: dict[str, Any]) -> list[Hop]:
    """Every hop the in-process fakes recorded, oldest first."""
    hops: list[Hop] = []
    backend = apps["avito"].state.backend
    for a in list(backend.activity):
        hops.append(Hop(a.seen_at, f"{a.who} -> Avito", f"{a.type} {a.message_id[:8]} in {a.chat_id}{_short(a.text)}"))
    for d in backend.dispatcher.attempts():
        result = d.status if d.status is not None else d.error
        hops.append(Hop(d.seen_at, "Avito -> gateway", f"webhook {d.message_id[:8]} (copy {d.copy}, attempt {d.attempt}) -> {result}"))
    for e in backend.journal.entries():
        if e.path.startswith("/media"):
            hops.append(Hop(e.seen_at, "n8n -> Avito media", f"GET {e.path[:40]} -> {e.status}"))
            continue
        label = "gateway -> Avito"
        body = e.body.get("message", {}).get("text") if isinstance(e.body, dict) and isinstance(e.body.get("message"), dict) else None
        fault = f" [fault: {e.fault}]" if e.fault else ""
        error = f" {e.extra['error'][:200]}" if e.extra.get("error") and not e.fault else ""
        hint = f" [{e.extra['hint']}]" if e.extra.get("hint") else ""
        hops.append(Hop(e.seen_at, label, f"{e.method} {e.path} -> {e.status}{fault}{error}{hint}{_short(body)}"))
    n8n = apps["n8n"].state
    for r in n8n.n8n.received():
        body = r.body if isinstance(r.body, dict) else {}
        mid = (body.get("meta") or {}).get("external_message_id", "")
        invalid = f" INVALID: {r.schema_errors[0]}" if r.schema_errors else ""
        hops.append(Hop(r.seen_at, "gateway -> n8n", f"/webhook/{r.path} {str(mid)[:8]}{_short(body.get('text'))}{invalid}"))
    for ev in n8n.flows.log.events():
        if ev.kind in ("received",):
            continue
        if ev.kind == "execution":  # a real n8n's run: its id is what to look up in n8n's UI
            error = f" at '{ev.data['node']}': {ev.data['error']}" if ev.data.get("error") else ""
            hops.append(Hop(ev.seen_at, "n8n execution", f"#{ev.data['id']} {ev.data['workflow']}: "
                            f"{ev.data['status']}{error}"[:200]))
            continue
        detail = ", ".join(f"{k}={v}" for k, v in ev.data.items() if v is not None and k not in ("text",))
        hops.append(Hop(ev.seen_at, "n8n flows", f"{ev.kind} {detail}"[:160]))
    stt = apps.get("stt")
    if stt is not None:
        for e in stt.state.control.journal.entries():
            hops.append(Hop(e.seen_at, "n8n -> STT", f"{e.method} {e.path} -> {e.status}"))
    return sorted(hops, key=lambda h: h.at)


def render(hops: list[Hop]) -> str:
    if not hops:
        return "(nothing happened)"
    start = hops[0].at
    return "\n".join(f"{(h.at - start) * 1000:8.1f} ms  {h.hop:<20} {h.what}" for h in hops)
