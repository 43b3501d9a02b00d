"""``/webhook/avito``: validate, deduplicate, classify, persist; forwarding happens in the outbox.

Avito gets 200 for everything it sends (its probe ``{}`` included), fast:
the handler only parses and writes one SQLite transaction. What is refused
(malformed, another account, unknown payload type) is recorded with the
reason and visible through ``GET /api/inbound/rejected``.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, ValidationError

from gateway.clock import Clock
from gateway.messaging import Messenger
from gateway.normalize import Kind, classify
from gateway.settings import GatewaySettings
from gateway.store import GatewayStore

__all__ = ["Inbound", "Outcome"]

log = logging.getLogger("gateway.inbound")
Outcome = str  # "probe" | "rejected" | "duplicate" | Kind


class _Value(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: StrictStr = Field(min_length=1)
    chat_id: StrictStr = Field(min_length=1)
    user_id: StrictInt
    author_id: StrictInt
    created: StrictInt
    type: StrictStr
    content: dict[str, Any] = Field(default_factory=dict)


class _Payload(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: StrictStr
    value: dict[str, Any]


class _Envelope(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: StrictStr | None = None
    version: StrictStr | None = None
    timestamp: StrictInt | None = None
    payload: _Payload


class Inbound:
    def __init__(self, settings: GatewaySettings, store: GatewayStore, messenger: Messenger, clock: Clock) -> None:
        self.settings, self.store, self.messenger, self.clock = settings, store, messenger, clock

    def _reject(self, reason: str, raw: bytes) -> Outcome:
        self.store.record_rejected(reason, raw.decode("utf-8", errors="replace"), self.clock.now())
        log.warning("webhook refused: %s", reason)
        return "rejected"

    def receive(self, raw: bytes) -> Outcome:
        try:
            body = json.loads(raw)
        except ValueError:
            return self._reject("body is not JSON", raw)
        if body == {}:
            return "probe"
        try:
            envelope = _Envelope.model_validate(body)
            if envelope.payload.type != "message":
                return self._reject(f"unsupported payload type {envelope.payload.type!r}", raw)
            value = _Value.model_validate(envelope.payload.value)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            return self._reject(f"not an Avito v3 webhook: {where}: {first['msg']}", raw)
        expected = self.settings.avito_user_id
        if expected is not None and value.user_id != expected:
            return self._reject(f"webhook for account {value.user_id}, this gateway serves {expected}", raw)
        text = value.content.get("text") if isinstance(value.content.get("text"), str) else None
        kind: Kind = classify(body["payload"]["value"], our_send=self.messenger.is_echo(value.id, value.chat_id, text))
        new = self.store.record_inbound(
            account=value.user_id, message_id=value.id, chat_id=value.chat_id, author_id=value.author_id,
            kind=kind, raw=body, now=self.clock.now(), forward=kind == "customer",
        )
        return kind if new else "duplicate"
