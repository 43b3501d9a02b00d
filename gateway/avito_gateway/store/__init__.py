"""The gateway's durable state: inbound events, outbox, sends, idempotency, shared rate-limit slots.

One interface, two engines: :class:`SqliteStore` (one process, a WAL file in ``DATA_DIR``) and
:class:`~avito_gateway.store.postgres.PostgresStore` (``DATABASE_URL=postgresql://...``, any number of
replicas), one schema (:mod:`.schema`). Persist first, then act: a webhook is committed before Avito gets
its 200; outbox items are claimed with a lease before they are forwarded (:mod:`.outbox`).
"""

from __future__ import annotations

from avito_gateway.store.base import RECENT_SENDS_KEEP, Store
from avito_gateway.store.engine import Done, StoreEngine, Tx
from avito_gateway.store.inbound import REJECTED_BODY_CHARS
from avito_gateway.store.outbox import MAX_SQL_INT
from avito_gateway.store.records import BEHIND_HEAD, IdempotencyRecord, InboundRecord, KeyClaim, OutboxItem
from avito_gateway.store.sqlite import SqliteStore

__all__ = ["BEHIND_HEAD", "Done", "IdempotencyRecord", "KeyClaim", "InboundRecord", "MAX_SQL_INT", "OutboxItem", "RECENT_SENDS_KEEP",
           "REJECTED_BODY_CHARS", "SqliteStore", "Store", "StoreEngine", "Tx"]
