"""The customer's n8n workflows wired in SPEC's order, run by the fake n8n in "flows" mode.

BAT IN Avito -> Tenant Resolver -> Universal Batcher -> (window closes on the
clock) -> AI Appeal Router -> Message Router -> BAT OUT Avito (or a recording
stub for other channels). Like n8n's webhook node in "respond immediately"
mode, the webhook answers at once and the workflow runs afterwards (one
worker thread, so one client's messages keep their arrival order).
"""

from __future__ import annotations

import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import httpx

from avito_harness.fakes.clock import Clock
from avito_harness.fakes.n8n.crm import CrmStore
from avito_harness.fakes.n8n.flows.ai import answer_for
from avito_harness.fakes.n8n.flows.bat_in import BatIn, Rejected
from avito_harness.fakes.n8n.flows.bat_out import BatOutAvito
from avito_harness.fakes.n8n.flows.batcher import Batch, Batcher, batch_key
from avito_harness.fakes.n8n.flows.config import FlowConfig
from avito_harness.fakes.n8n.flows.events import FlowLog
from avito_harness.fakes.n8n.flows.tenant import resolve_tenant

__all__ = ["Workflows", "OTHER_CHANNELS", "from_seller"]

OTHER_CHANNELS = ("telegram", "vk", "whatsapp", "max")


class Workflows:
    def __init__(self, config: FlowConfig, clock: Clock, crm: CrmStore) -> None:
        self.initial, self.config, self.clock, self.crm = config, config, clock, crm
        self.log = FlowLog()
        self.http = httpx.Client(follow_redirects=False)
        self.bat_in = BatIn(self.http)
        self.bat_out = BatOutAvito(self.http)
        self.batcher = Batcher(clock, self._batch_closed)
        self.stubs: list[dict[str, Any]] = []
        self.run_id = uuid.uuid4().hex[:8]  # keeps BAT OUT's idempotency keys unique across CRM resets
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="n8n-flows")

    def _now(self) -> str:
        return datetime.fromtimestamp(self.clock.now(), tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")

    # --- control -----------------------------------------------------------
    def configure(self, changes: dict[str, Any]) -> FlowConfig:
        self.config = self.config.merged(changes)
        return self.config

    def reset(self) -> None:
        self.config = self.initial
        self.batcher.reset()
        self.crm.reset()
        self.log.reset()
        self.stubs.clear()
        self.run_id = uuid.uuid4().hex[:8]

    def close(self) -> None:
        self._worker.shutdown(wait=False, cancel_futures=True)
        self.http.close()
        self.crm.close()

    # --- BAT IN ------------------------------------------------------------
    def submit(self, message: Any) -> Future[None]:
        """A message reached the webhook: run the inbound workflow after the answer (respond immediately)."""
        return self._worker.submit(self.inbound, message)

    def inbound(self, message: Any) -> None:
        cfg = self.config
        self.log.add("received", self.clock.now(), external_message_id=_message_id(message))
        try:
            ready, voice_problem = self.bat_in.process(
                message, stt_url=cfg.stt_url, stt_key=cfg.stt_api_key, stt_model=cfg.stt_model,
                download_timeout=cfg.download_timeout,
            )
            if voice_problem:
                self.log.add("transcription_failed", self.clock.now(), external_message_id=_message_id(message),
                             reason=voice_problem)
            elif ready["media"]["has_voice"]:
                self.log.add("transcribed", self.clock.now(), external_message_id=_message_id(message),
                             text=ready["media"]["voice_transcribed_text"])
            tenant = resolve_tenant(ready, cfg.tenant_mapping, cfg.default_tenant)
        except Rejected as exc:
            self.crm.reject(str(exc), message, self._now())
            self.log.add("rejected", self.clock.now(), reason=str(exc))
            return
        message_id = _message_id(ready)
        if message_id and not self.crm.claim_inbound(str(ready["channel"]), message_id, self._now()):
            self.log.add("duplicate", self.clock.now(), external_message_id=message_id)
            return  # n8n gets at-least-once delivery: a repeat never makes a second appeal message or answer
        if from_seller(ready):
            self._seller_reply(tenant, ready)
            return
        batch = self.batcher.add(batch_key(tenant, ready), ready, cfg.batch_window)
        self.log.add("batched", self.clock.now(), tenant_id=tenant, external_user_id=ready["external_user_id"],
                     external_message_id=_message_id(ready), batch_size=len(batch.messages))

    def _seller_reply(self, tenant: str, message: dict[str, Any]) -> None:
        """The seller answered in the Avito app: kept in the chat's appeal as an operator row, never sent to the AI."""
        chat = str(message["external_chat_id"])
        appeal = self.crm.appeal_for_chat(str(message["channel"]), chat)
        if appeal is None:
            appeal, _ = self.crm.upsert_appeal(tenant_id=tenant, channel=str(message["channel"]),
                                               external_user_id=str(message["external_user_id"]), external_chat_id=chat,
                                               client_name=None, status="answered", now=self._now())
        history_id = self.crm.add_history(
            tenant_id=appeal["tenant_id"], appeal_id=appeal["id"], message_type="operator", channel=appeal["channel"],
            text=str(message.get("text") or ""), external_message_id=_message_id(message), status="sent", error=None,
            now=self._now(),
        )
        self.log.add("seller_reply", self.clock.now(), appeal_id=appeal["id"], history_id=history_id,
                     external_message_id=_message_id(message))

    # --- AI Appeal Router --------------------------------------------------
    def _batch_closed(self, batch: Batch) -> None:
        tenant, channel, user, chat = batch.key
        first = batch.messages[0]
        status = "waiting_operator" if self.config.operator_mode else "open"
        appeal, created = self.crm.upsert_appeal(
            tenant_id=tenant, channel=channel, external_user_id=user, external_chat_id=chat,
            client_name=first.get("client_name"), status=status, now=self._now(),
        )
        batch_id = self.crm.add_batch(
            appeal_id=appeal["id"], tenant_id=tenant, channel=channel, external_user_id=user, external_chat_id=chat,
            text=batch.text(), messages=batch.messages,
            opened_at=_iso(batch.opened_at), closed_at=_iso(batch.closed_at or batch.opened_at),
        )
        self.log.add("appeal_created" if created else "appeal_updated", self.clock.now(), appeal_id=appeal["id"],
                     batch_id=batch_id, messages=len(batch.messages))
        if self.config.operator_mode:
            self.log.add("waiting_operator", self.clock.now(), appeal_id=appeal["id"])
            return
        has_images = any(m["media"]["has_images"] for m in batch.messages)
        answer = answer_for(batch.text(), first.get("client_name"), self.config.ai_rules, self.config.ai_default_answer,
                            has_images=has_images)
        self.route(appeal["id"], answer, "ai")

    def operator_answer(self, appeal_id: int, text: str) -> dict[str, Any]:
        """An operator answers an appeal (operator mode, or any time)."""
        if self.crm.appeal(appeal_id) is None:
            raise KeyError(appeal_id)
        return self.route(appeal_id, text, "operator")

    # --- Message Router + BAT OUT ------------------------------------------
    def route(self, appeal_id: int, text: str, message_type: str) -> dict[str, Any]:
        appeal = self.crm.appeal(appeal_id) or {}
        job = {"tenant_id": appeal["tenant_id"], "appeal_id": appeal_id, "channel": appeal["channel"],
               "message_text": text, "external_chat_id": appeal["external_chat_id"]}
        self.log.add("routed", self.clock.now(), appeal_id=appeal_id, channel=appeal["channel"], message_type=message_type)
        if appeal["channel"] != "avito":
            return self._stub_out(job, message_type)
        return self._bat_out(job, message_type)

    def _stub_out(self, job: dict[str, Any], message_type: str) -> dict[str, Any]:
        """BAT OUT Telegram / VK / WhatsApp / MAX: recorded, never sent anywhere."""
        self.stubs.append({**job, "message_type": message_type})
        history_id = self.crm.add_history(
            tenant_id=job["tenant_id"], appeal_id=job["appeal_id"], message_type=message_type, channel=job["channel"],
            text=job["message_text"], external_message_id=f"stub-{len(self.stubs)}", status="sent", error=None,
            now=self._now(),
        )
        self.crm.set_status(job["appeal_id"], "answered", self._now())
        self.log.add("stub_sent", self.clock.now(), appeal_id=job["appeal_id"], channel=job["channel"],
                     history_id=history_id)
        return {"success": True, "channel": job["channel"], "stub": True, "history_id": history_id}

    def _bat_out(self, job: dict[str, Any], message_type: str) -> dict[str, Any]:
        cfg = self.config
        sequence = len(self.crm.history(job["appeal_id"])) + 1
        outcome = self.bat_out.send(job, gateway_url=cfg.gateway_url, api_key=cfg.gateway_api_key,
                                    timeout=cfg.gateway_timeout, retries=cfg.gateway_retries,
                                    idempotency_key=f"bat-out-{self.run_id}-{job['appeal_id']}-{sequence}")
        history_id = self.crm.add_history(
            tenant_id=job["tenant_id"], appeal_id=job["appeal_id"], message_type=message_type, channel="avito",
            text=job["message_text"], external_message_id=outcome.get("message_id"),
            status="sent" if outcome["success"] else "failed", error=outcome.get("error"), now=self._now(),
        )
        self.crm.set_status(job["appeal_id"], "answered" if outcome["success"] else "failed", self._now())
        kind = "sent" if outcome["success"] else "send_failed"
        self.log.add(kind, self.clock.now(), appeal_id=job["appeal_id"], history_id=history_id,
                     message_id=outcome.get("message_id"), error=outcome.get("error"), attempts=outcome.get("attempts"))
        return {**outcome, "history_id": history_id}


def from_seller(message: dict[str, Any]) -> bool:
    """Written by our own account in the Avito app: ``meta.author_role`` says so, or the author is our account."""
    meta = message.get("meta") or {}
    if meta.get("author_role") is not None:
        return bool(meta["author_role"] == "seller")
    return meta.get("user_id") is not None and str(message.get("external_user_id")) == str(meta["user_id"])


def _message_id(message: Any) -> str | None:
    meta = message.get("meta") if isinstance(message, dict) else None
    return meta.get("external_message_id") if isinstance(meta, dict) else None


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")
