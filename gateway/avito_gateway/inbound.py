"""``/webhook/avito``: validate, route to its account, deduplicate, classify, persist; forwarding happens in
the outbox.

A webhook belongs to the account whose ``user_id`` it carries; on an account's secret path it must carry
that account's ``user_id``, on the plain path it goes to whichever account has it (and whose plain path is
open).

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
from collections.abc import Callable
from typing import Protocol

from avito_gateway.accounts import Account
from avito_gateway.clock import Clock
from avito_gateway.echoes import EchoBook
from avito_gateway.errors import StorageError
from avito_gateway.logsafe import safe
from avito_gateway.normalize import FORWARDED, Kind, classify, normalize
from avito_gateway.store import Store
from avito_gateway.webhook_auth import WebhookAuth
from avito_gateway.webhook_body import Refused, read_webhook

__all__ = ["Inbound", "InboundAccount", "Outcome"]

log = logging.getLogger("avito_gateway.inbound")
Outcome = str  # "probe" | "rejected" | "duplicate" | Kind


class InboundAccount(Protocol):
    """What the receiver needs of the account a webhook belongs to."""

    @property
    def account(self) -> Account: ...

    @property
    def echoes(self) -> EchoBook: ...

    @property
    def webhook_auth(self) -> WebhookAuth: ...


class Inbound:
    def __init__(self, store: Store, clock: Clock, route: Callable[[int], InboundAccount | None],
                 served: Callable[[], list[int | None]]) -> None:
        self.store, self.clock = store, clock
        self._route, self._served = route, served

    async def _reject(self, reason: str, raw: bytes, account: int | None = None) -> Outcome:
        await self.store.record_rejected(reason, raw.decode("utf-8", errors="replace"), self.clock.now(), account)
        log.warning("webhook refused: %s", safe(reason))
        return "rejected"

    async def receive(self, raw: bytes, via: InboundAccount | None = None) -> Outcome:
        """Classify and store one delivery (``via``: the account whose secret path it came on; None: the plain
        path). Raises only :class:`StorageError` (the database refused the write)."""
        try:
            return await self._receive(raw, via)
        except StorageError:
            raise
        except Exception as exc:  # any body nobody foresaw: refused and on record, never a 500 to Avito
            log.warning("webhook could not be processed: %s", safe(repr(exc)))
            return await self._reject(f"could not be processed: {type(exc).__name__}", raw)

    async def _receive(self, raw: bytes, via: InboundAccount | None) -> Outcome:
        try:
            read = read_webhook(raw)
        except Refused as exc:
            return await self._reject(str(exc), raw, via.account.user_id if via else None)
        if read is None:
            return "probe"
        body, value = read
        owner = self._route(value.user_id)
        if owner is None:
            served = ", ".join(str(u) for u in self._served())
            return await self._reject(f"webhook for account {value.user_id}, this gateway serves {served}", raw)
        if via is not None and owner is not via:
            return await self._reject(f"webhook for account {value.user_id} came on the secret path of account "
                                f"{via.account.user_id} ({via.account.name})", raw, via.account.user_id)
        if via is None and not owner.webhook_auth.plain_path_open():
            return await self._reject(f"account {owner.account.name} takes webhooks only on its secret path", raw,
                                value.user_id)
        try:  # what n8n will get must be buildable and encodable now, not fail later in the outbox
            json.dumps(normalize(body), allow_nan=False, ensure_ascii=False).encode("utf-8")
        except (AttributeError, KeyError, TypeError, ValueError) as exc:  # a field of the wrong type, NaN, a lone surrogate
            return await self._reject(f"message cannot be normalized: {type(exc).__name__}: {exc}", raw,
                                      value.user_id)
        kind: Kind = classify(body["payload"]["value"], our_send=False)
        if kind == "seller_reply":  # our own account wrote it: typed in the app, or our send coming back?
            text = value.content.get("text") if isinstance(value.content.get("text"), str) else None
            if await owner.echoes.is_echo(value.id, value.chat_id, text):
                kind = "echo"
        new = await self.store.record_inbound(
            account=value.user_id, message_id=value.id, chat_id=value.chat_id, author_id=value.author_id,
            kind=kind, raw=body, now=self.clock.now(), forward=kind in FORWARDED,
        )
        return kind if new else "duplicate"
