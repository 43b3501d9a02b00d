"""A load run judged: every customer's message at n8n once and in its chat's order, every reply in its chat once,
latencies (Avito -> n8n, the CRM's send) at p50/p95/p99, the slowest shop against the median one, errors by kind.

The evidence is what the fakes saw (the fake Avito's chats, in Avito's order; the fake n8n's deliveries, with the
moment each arrived) and what Locust's users wrote they sent, never the gateway's own word.
"""

from __future__ import annotations

import json
import math
import re
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["LoadVerdict", "judge", "percentile", "read_sent"]

INBOUND = re.compile(r"^load (\S+) t=([0-9.]+)$")


def percentile(values: Sequence[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(p / 100 * len(ordered)) - 1))]  # nearest rank


def read_sent(folder: Path) -> list[dict[str, Any]]:
    """What every Locust process's users sent (one JSON line per request)."""
    return [json.loads(line) for path in sorted(folder.glob("sent-*.jsonl"))
            for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@dataclass
class LoadVerdict:
    sent: int = 0
    delivered: int = 0
    lost: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    order_violations: list[str] = field(default_factory=list)
    replies_sent: int = 0
    replies_lost: list[str] = field(default_factory=list)
    replies_duplicated: list[str] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    inbound_latency: dict[str, float | None] = field(default_factory=dict)
    reply_latency: dict[str, float | None] = field(default_factory=dict)
    per_shop_p99: dict[str, float] = field(default_factory=dict)
    shops_loaded: int = 0  # shops whose customers wrote
    fairness: float | None = None  # the slowest shop's p99 over the median shop's

    @property
    def passed(self) -> bool:
        return not (self.lost or self.duplicated or self.order_violations or self.replies_lost
                    or self.replies_duplicated) and self.sent > 0

    def as_dict(self) -> dict[str, Any]:
        doc = {k: v for k, v in self.__dict__.items()}
        for name in ("lost", "duplicated", "order_violations", "replies_lost", "replies_duplicated"):
            doc[name] = len(getattr(self, name))
            doc[f"{name}_examples"] = getattr(self, name)[:10]
        return {"passed": self.passed, **doc}


def _percentiles(values: Sequence[float]) -> dict[str, float | None]:
    return {f"p{p}": (round(v, 4) if (v := percentile(values, p)) is not None else None) for p in (50, 95, 99)}


def judge(sent: Iterable[dict[str, Any]], received: Iterable[dict[str, Any]],
          chats: dict[tuple[int, str], list[dict[str, Any]]]) -> LoadVerdict:
    """``received``: the fake n8n's deliveries (``body``, ``time``); ``chats``: each (shop, chat)'s messages as
    the fake Avito holds them, oldest first."""
    verdict = LoadVerdict()
    sent = list(sent)
    errors: Counter[str] = Counter()
    expected: dict[str, tuple[int, str]] = {}
    replies: dict[str, tuple[int, str]] = {}
    reply_seconds: list[float] = []
    for entry in sent:
        ok = entry["status"] in (200, 201)
        if not ok:
            errors[f"{entry['kind']} answered {entry['status']}"] += 1
        elif entry["kind"] == "inbound":
            expected[entry["marker"]] = (entry["shop"], entry["chat"])
        else:
            replies[entry["text"]] = (entry["shop"], entry["chat"])
            reply_seconds.append(float(entry["seconds"]))
    verdict.sent, verdict.replies_sent, verdict.errors = len(expected), len(replies), dict(errors)

    arrivals: dict[str, list[float]] = defaultdict(list)
    arrival_order: dict[tuple[int, str], list[str]] = defaultdict(list)
    latencies: dict[int, list[float]] = defaultdict(list)
    for item in sorted(received, key=lambda r: (r["time"], r.get("id", 0))):
        body = item.get("body") or {}
        found = INBOUND.match(str(body.get("text", ""))) if isinstance(body, dict) else None
        if not found or found.group(1) not in expected:
            continue
        marker = found.group(1)
        if not arrivals[marker]:
            shop, chat = expected[marker]
            arrival_order[(shop, chat)].append(marker)
            latencies[shop].append(max(0.0, float(item["time"]) - float(found.group(2))))
        arrivals[marker].append(float(item["time"]))
    verdict.delivered = sum(1 for m in expected if arrivals.get(m))
    verdict.lost = [m for m in expected if not arrivals.get(m)]
    verdict.duplicated = [m for m, times in arrivals.items() if len(times) > 1]

    for key, messages in chats.items():
        in_avito = [found.group(1) for m in messages
                    if (found := INBOUND.match(str((m.get("content") or {}).get("text", ""))))
                    and found.group(1) in expected]
        at_n8n = arrival_order.get(key, [])
        both = set(at_n8n)
        if [m for m in in_avito if m in both] != at_n8n:
            verdict.order_violations.append(f"chat {key[1]} of shop {key[0]}")
        texts = Counter(str((m.get("content") or {}).get("text", "")) for m in messages if m.get("direction") == "out")
        for text, where in replies.items():
            if where == key:
                if texts[text] == 0:
                    verdict.replies_lost.append(text)
                elif texts[text] > 1:
                    verdict.replies_duplicated.append(text)

    every = [s for values in latencies.values() for s in values]
    verdict.inbound_latency = _percentiles(every)
    verdict.reply_latency = _percentiles(reply_seconds)
    verdict.shops_loaded = len({shop for shop, _ in expected.values()})
    verdict.per_shop_p99 = {str(shop): round(p, 4) for shop, values in latencies.items()
                            if (p := percentile(values, 99)) is not None}
    if verdict.per_shop_p99:
        median = statistics.median(verdict.per_shop_p99.values())
        verdict.fairness = round(max(verdict.per_shop_p99.values()) / median, 2) if median > 0 else None
    return verdict
