"""A real n8n behind the fake n8n's webhook: every call is recorded (and faults apply), then forwarded to n8n.

The fake n8n stays the gateway's n8n URL, like WireMock's proxy mode: the harness keeps seeing what the gateway
sent and can still make "n8n" fail, while BatteryCRM's real workflows run in n8n over a real Postgres. The
CRM questions the steps ask (appeals, messages_history, ...) are answered from Postgres, and the flow events
are derived from the rows the workflows wrote and from n8n's executions: the effects, never n8n's status code.
With ``mode: record`` (the scenario did not ask for the workflows) nobody answers: n8n runs them in operator
mode with no batch window, so nothing goes back to Avito on its own and nothing runs on past the scenario.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

import httpx

from avito_harness.fakes.n8n.flows.config import FlowConfig
from avito_harness.fakes.n8n.flows.events import FlowEvent
from avito_harness.fakes.settings import WEBHOOK_PATH
from avito_harness.real.crm import PostgresCrm
from avito_harness.real.n8n.executions import Execution, Executions
from avito_harness.waiting import wait_until

__all__ = ["RealFlows"]

POLL = 0.1
RUNNING = ("running", "waiting", "new")


class DerivedLog:
    """Flow events read back from the CRM tables and n8n's executions; each keeps the id and time first seen."""

    def __init__(self, flows: RealFlows) -> None:
        self.flows = flows
        self._lock = threading.Lock()
        self._seen: dict[tuple[str, int], FlowEvent] = {}
        self._floor = 0  # executions up to this id belong to earlier scenarios
        self._newest = 0
        self._running = 0
        self._executions: list[Execution] = []

    def _observe(self) -> None:
        crm = self.flows.crm
        found: list[tuple[str, int, dict[str, Any]]] = []
        for item in crm.batch_items():
            message, mid = item["message"], (item["message"].get("meta") or {}).get("external_message_id")
            found.append(("batched", item["id"], {"tenant_id": item["tenant_id"], "external_message_id": mid}))
            media = message.get("media") or {}
            if media.get("voice_transcribed_text") is not None:
                found.append(("transcribed", item["id"], {"external_message_id": mid,
                                                          "text": media["voice_transcribed_text"]}))
            if media.get("voice_error"):
                found.append(("transcription_failed", item["id"], {"external_message_id": mid,
                                                                   "reason": media["voice_error"]}))
        firsts: set[int] = set()
        for batch in crm.batches():
            kind = "appeal_updated" if batch["appeal_id"] in firsts else "appeal_created"
            firsts.add(batch["appeal_id"])
            found.append((kind, batch["id"], {"appeal_id": batch["appeal_id"], "batch_id": batch["id"],
                                              "messages": len(batch["messages"])}))
        for appeal in crm.appeals():
            if appeal["status"] == "waiting_operator":
                found.append(("waiting_operator", appeal["id"], {"appeal_id": appeal["id"]}))
        sellers = crm.seller_rows()
        for row in crm.history():
            if row["id"] in sellers:
                kind = "seller_reply"
            elif row["channel"] != "avito":
                kind = "stub_sent"
            else:
                kind = "sent" if row["status"] == "sent" else "send_failed"
            found.append((kind, row["id"], {"appeal_id": row["appeal_id"], "history_id": row["id"],
                                            "message_id": row["external_message_id"], "error": row["error"]}))
        for row in crm.rejected():
            found.append(("rejected", row["id"], {"reason": row["reason"]}))
        every = self.flows.executions.after(self._floor) if self.flows.executions else []
        executions = [e for e in every if not e.on_its_own]  # a schedule's runs are its own, no scenario's
        for execution in executions:
            if execution.status not in RUNNING:
                found.append(("execution", execution.id, execution.to_dict()))
        with self._lock:
            self._executions = [e for e in executions if e.status not in RUNNING]
            self._running = sum(1 for e in executions if e.status in ("running", "new"))
            self._newest = max([self._newest, *(e.id for e in every)])
            for kind, key, data in found:
                if (kind, key) not in self._seen:
                    self._seen[(kind, key)] = FlowEvent(len(self._seen) + 1, kind, self.flows.clock_now(), data)

    def events(self, kind: str | None = None, since: int = 0) -> list[FlowEvent]:
        self._observe()
        with self._lock:
            return sorted((e for e in self._seen.values() if e.id > since and (kind is None or e.kind == kind)),
                          key=lambda e: e.id)

    def wait_for(self, kind: str, count: int, timeout: float, since: int = 0) -> list[FlowEvent]:
        wait_until(lambda: len(self.events(kind, since)) >= count, timeout, interval=POLL, what=f"{count} {kind}")
        return self.events(kind, since)

    def failed_executions(self) -> list[Execution]:
        self._observe()
        with self._lock:
            return [e for e in self._executions if e.status in ("error", "crashed")]

    def running(self) -> int:
        """Executions under way now (a Wait node's pause does not count)."""
        self._observe()
        with self._lock:
            return self._running

    def reset(self) -> None:
        self._observe()  # what ran before the reset is not this scenario's, even if it is still running
        with self._lock:
            self._floor = self._newest
            self._seen.clear()
            self._executions.clear()


class RealFlows:
    """The Workflows interface the fake n8n's control uses, backed by a real n8n and its Postgres."""

    forwards = True

    def __init__(self, config: FlowConfig, crm: PostgresCrm, upstream: str, executions: Executions | None,
                 clock_now: Callable[[], float]) -> None:
        self.initial, self.config, self.crm, self.upstream = config, config, crm, upstream.rstrip("/")
        self.executions, self.clock_now = executions, clock_now
        self.http = httpx.Client(timeout=30)
        self.log = DerivedLog(self)
        self.run_id = uuid.uuid4().hex[:8]
        self.crm.reset(self._settings(), dict(config.tenant_mapping))

    def _settings(self) -> dict[str, str | None]:
        cfg = self.config
        idle = cfg.mode == "record"  # nobody answers, and no window keeps an execution open past the scenario
        return {"batch_window_seconds": "0" if idle else f"{cfg.batch_window:g}",
                "operator_mode": "true" if cfg.operator_mode or idle else "false",
                "default_tenant": cfg.default_tenant or "", "gateway_url": cfg.gateway_url or "",
                "ai_rules": json.dumps(cfg.ai_rules, ensure_ascii=False), "ai_default_answer": cfg.ai_default_answer,
                "run_id": self.run_id}

    # --- control -------------------------------------------------------------------------------------------
    def configure(self, changes: dict[str, Any]) -> FlowConfig:
        self.config = self.config.merged(changes)
        self.crm.configure(self._settings(), dict(self.config.tenant_mapping) if "tenant_mapping" in changes else None)
        return self.config

    def reset(self) -> None:
        self.config = self.initial
        self.run_id = uuid.uuid4().hex[:8]
        self.log.reset()
        self.crm.reset(self._settings(), dict(self.config.tenant_mapping))

    def close(self) -> None:
        self.http.close()
        self.crm.close()

    # --- n8n -----------------------------------------------------------------------------------------------
    def forward(self, path: str, body: bytes, content_type: str) -> httpx.Response:
        """``path`` is ``webhook/<name>`` (or ``webhook-test/...``); the call the gateway made, as n8n answers it (its status and body go back to the gateway)."""
        return self.http.post(f"{self.upstream}/{path}", content=body,
                              headers={"content-type": content_type or "application/json"})

    def submit(self, message: Any) -> Future[None]:
        """A normalized message of any channel into BAT IN (as another channel's trigger would)."""
        done: Future[None] = Future()
        try:
            answer = self.http.post(f"{self.upstream}{WEBHOOK_PATH}", json=message)
            answer.raise_for_status()
            done.set_result(None)
        except httpx.HTTPError as exc:
            done.set_exception(exc)
        return done

    def operator_answer(self, appeal_id: int, text: str) -> dict[str, Any]:
        """The operator's answer through the Message Router's webhook (POST /webhook/operator-answer)."""
        if self.crm.appeal(appeal_id) is None:
            raise KeyError(appeal_id)
        answer = self.http.post(f"{self.upstream}/webhook/operator-answer", json={"appeal_id": appeal_id, "text": text})
        try:
            body = answer.json()
        except ValueError:
            body = {}
        return body if isinstance(body, dict) and body else {"success": False, "error": f"n8n answered {answer.status_code}"
                                                             " with no result (see its executions)"}

    @property
    def stubs(self) -> list[dict[str, Any]]:
        return [{"tenant_id": r["tenant_id"], "appeal_id": r["appeal_id"], "channel": r["channel"],
                 "message_text": r["text"], "message_type": r["message_type"]}
                for r in self.crm.history() if r["channel"] != "avito"]

    def idle(self, timeout: float, *, batches: bool = True) -> bool:
        """True once no execution is under way and (``batches``) no batch window is open (every batch went on)."""
        return bool(wait_until(lambda: not ((batches and self.crm.open_batches()) or self.log.running()), timeout,
                               interval=POLL, what="n8n to be idle"))
