"""Locust's users for ``avito-harness load`` (``locust -f`` this file; ``AVITO_LOAD_PLAN`` names the plan).

* :class:`Customer`: a customer of a shop writes in one of its chats (through the fake Avito's control API: the
  fake stores the message and delivers Avito's webhook to the gateway, as Avito would). Each text carries the
  shop, the chat, a per-chat sequence number and the moment it was written, so the judge can tell lost,
  duplicated and reordered messages and measure when n8n got each.
* :class:`Crm`: the shop's CRM answers through the gateway (``POST /api/messages/send`` with the shop's key and an
  ``Idempotency-Key``), as BAT OUT does.

Every user writes what it sent (and the answer it got) to its process's file in the plan's ``out_dir``.
"""

from __future__ import annotations

import fcntl
import itertools
import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

from locust import HttpUser, constant_pacing, task

from avito_harness.fakes.clock import Clock
from avito_harness.load.plan import LoadPlan

PLAN = LoadPlan.read(Path(os.environ["AVITO_LOAD_PLAN"]))
CLOCK = Clock()  # real time: the judge compares it with the moment the fake n8n got each message
_OUT = Path(PLAN.out_dir) / f"sent-{os.getpid()}-{uuid.uuid4().hex[:6]}.jsonl"
_sequence: dict[str, itertools.count[int]] = {}


def _record(entry: dict[str, Any]) -> None:
    with _OUT.open("a", encoding="utf-8") as out:
        out.write(json.dumps(entry, ensure_ascii=False) + "\n")


def _next_shop(user: HttpUser) -> int:
    """Users spread over the shops whichever process Locust puts them in: the n-th customer (and the n-th CRM)
    of the whole run takes shop n, by a counter every process on this machine shares (a locked file)."""
    with (Path(PLAN.out_dir) / f"{type(user).__name__}.counter").open("a+", encoding="utf-8") as counter:
        fcntl.flock(counter, fcntl.LOCK_EX)
        counter.seek(0)
        taken = int(counter.read() or 0)
        counter.seek(0)
        counter.truncate()
        counter.write(str(taken + 1))
    return taken % len(PLAN.shops)


class Customer(HttpUser):
    host = PLAN.avito_url
    wait_time = constant_pacing(1.0 / max(PLAN.customer_rate, 0.001))

    def on_start(self) -> None:
        self.shop = PLAN.shops[_next_shop(self)]
        self.chats = itertools.cycle(self.shop.chats)

    @task
    def writes(self) -> None:
        chat = next(self.chats)
        seq = next(_sequence.setdefault(f"{os.getpid()}:{chat}", itertools.count()))
        marker = f"{self.shop.user_id}/{chat}/{os.getpid()}-{seq}"
        text = f"load {marker} t={CLOCK.now():.6f}"
        with self.client.post(f"{self.shop.avito_url}/_sim/accounts/{self.shop.user_id}/chats/{chat}/messages",
                              json={"text": text},
                              name="customer writes (Avito -> gateway)", catch_response=True) as answer:
            _record({"kind": "inbound", "shop": self.shop.user_id, "chat": chat, "marker": marker,
                     "status": answer.status_code})


class Crm(HttpUser):
    host = PLAN.gateway_url
    wait_time = constant_pacing(1.0 / max(PLAN.reply_rate, 0.001))

    def on_start(self) -> None:
        self.shop = PLAN.shops[_next_shop(self)]
        self.chats = itertools.cycle(self.shop.chats)

    @task
    def replies(self) -> None:
        chat, key = next(self.chats), uuid.uuid4().hex
        text = f"reply {self.shop.user_id}/{chat}/{key}"
        started = time.perf_counter()
        with self.client.post(f"{self.shop.gateway_url}/api/messages/send", json={"chat_id": chat, "text": text}, catch_response=True,
                              headers={"X-API-Key": self.shop.api_key, "Idempotency-Key": key},
                              name="CRM replies (n8n -> gateway -> Avito)") as answer:
            _record({"kind": "reply", "shop": self.shop.user_id, "chat": chat, "text": text,
                     "status": answer.status_code, "seconds": time.perf_counter() - started})

