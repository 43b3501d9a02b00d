"""``/webhook/avito``: validate, deduplicate, classify, persist; forwarding happens in the outbox.

Avito gets 200 for everything it sends (its probe ``{}`` included), fast:
the handler only parses and writes one SQLite transaction. What is refused
(malformed, hostile, another account, unknown payload type, a message that
could not be normalized) is recorded with the reason and visible through
``GET /api/inbound/rejected``: nothing is stored that could later block the
outbox.
"""

from __future__ import annotations

import json
import logging

from avito_gateway.clock import Clock
from avito_gateway.errors import StorageError
from avito_gateway.logsafe import safe
from avito_gateway.messaging import Messenger
from avito_gateway.normalize import FORWARDED, Kind, classify, normalize
from avito_gateway.settings import GatewaySettings
from avito_gateway.store import GatewayStore
from avito_gateway.webhook_body import Refused, read_webhook

__all__ = ["Inbound", "Outcome"]

log = logging.getLogger("avito_gateway.inbound")
Outcome = str  # "probe" | "rejected" | "duplicate" | Kind


class Inbound:
    def __init__(self, settings: GatewaySettings, store: GatewayStore, messenger: Messenger, clock: Clock) -> None:
        self.settings, self.store, self.messenger, self.clock = settings, store, messenger, clock

    def _reject(self, reason: str, raw: bytes) -> Outcome:
        self.store.record_rejected(reason, raw.decode("utf-8", errors="replace"), self.clock.now())
        log.warning("webhook refused: %s", safe(reason))
        return "rejected"

    def receive(self, raw: bytes) -> Outcome:
        """Classify and store one delivery. Raises only :class:`StorageError` (the database refused the write)."""
        try:
            return self._receive(raw)
        except StorageError:
            raise
        except Exception as exc:  # a body nobody foresaw: refused and on record, never a 500 to Avito
            log.warning("webhook could not be processed: %s", safe(repr(exc)))
            return self._reject(f"could not be processed: {type(exc).__name__}", raw)

    def _receive(self, raw: bytes) -> Outcome:
        try:
            read = read_webhook(raw)
        except Refused as exc:
            return self._reject(str(exc), raw)
        if read is None:
            return "probe"
        body, value = read
        expected = self.settings.avito_user_id
        if expected is not None and value.user_id != expected:
            return self._reject(f"webhook for account {value.user_id}, this gateway serves {expected}", raw)
        try:  # what n8n will get must be buildable and encodable now, not fail later in the outbox
            json.dumps(normalize(body), allow_nan=False, ensure_ascii=False).encode("utf-8")
        except Exception as exc:
            return self._reject(f"message cannot be normalized: {type(exc).__name__}: {exc}", raw)
        text = value.content.get("text") if isinstance(value.content.get("text"), str) else None
        kind: Kind = classify(body["payload"]["value"], our_send=self.messenger.is_echo(value.id, value.chat_id, text))
        new = self.store.record_inbound(
            account=value.user_id, message_id=value.id, chat_id=value.chat_id, author_id=value.author_id,
            kind=kind, raw=body, now=self.clock.now(), forward=kind in FORWARDED,
        )
        return kind if new else "duplicate"
