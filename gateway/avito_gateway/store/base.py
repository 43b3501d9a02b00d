"""The store as the gateway uses it: every table's operations on one engine, and the retention sweep."""

from __future__ import annotations

from avito_gateway.store.engine import StoreEngine, Tx
from avito_gateway.store.inbound import InboundTables
from avito_gateway.store.outbox import OutboxQueue
from avito_gateway.store.sends import SendRecords

__all__ = ["RECENT_SENDS_KEEP", "Store"]

#: Sends under way are remembered this long (seconds) for echo recognition across replicas.
RECENT_SENDS_KEEP = 600.0

class Store(InboundTables, OutboxQueue, SendRecords, StoreEngine):
    """What the gateway keeps, whatever the engine."""

    async def sweep(self, now: float, keep_seconds: float, rejected_keep: int) -> dict[str, int]:
        """Forget what is older than ``keep_seconds`` and no longer needed, then give the space back.

        Kept regardless of age: items still pending or dead (they are work). Dedupe keys live as long as
        their inbound row, so a redelivery within the retention window is still recognised.
        """
        cutoff = now - keep_seconds
        statements = {
            "outbox": ("DELETE FROM outbox WHERE status = 'delivered' AND delivered_at < ?", (cutoff,)),
            "inbound": ("DELETE FROM inbound WHERE received_at < ? AND id NOT IN (SELECT inbound_id FROM outbox)",
                        (cutoff,)),
            "rejected": ("DELETE FROM rejected WHERE received_at < ? OR id <= (SELECT MAX(id) FROM rejected) - ?",
                         (cutoff, rejected_keep)),
            "sent": ("DELETE FROM sent WHERE created_at < ?", (cutoff,)),
            "recent_sends": ("DELETE FROM recent_sends WHERE at < ?", (now - RECENT_SENDS_KEEP,)),
            # finished keys, and keys left unfinished whose claim ran out long ago
            "idempotency": ("DELETE FROM idempotency WHERE created_at < ?"
                            " AND (status IS NOT NULL OR claimed_until IS NULL OR claimed_until < ?)", (cutoff, cutoff)),
        }

        async def work(tx: Tx) -> dict[str, int]:
            return {name: (await tx.run(sql, params)).count for name, (sql, params) in statements.items()}

        removed = await self._tx(work)
        try:
            await self._vacuum()
        except self._failures() as exc:
            raise self._write_failed(exc) from None
        return removed

