"""The outbox: customer messages waiting for n8n, claimed with a lease before they are forwarded.

Two replicas never forward the same item at once, and a killed replica's claims come back when its lease
runs out; only the oldest pending item of a chat can be claimed, which keeps each chat's order across
replicas. How an engine picks the items is its own (:meth:`OutboxQueue.claim`).
"""

from __future__ import annotations

import json
from abc import abstractmethod
from collections.abc import Sequence
from typing import Any

from avito_gateway.store.engine import StoreEngine
from avito_gateway.store.inbound import account_filter
from avito_gateway.store.records import OutboxItem

__all__ = ["ITEM_SQL", "MAX_SQL_INT", "OutboxQueue"]

#: SQL integers are signed 64-bit; larger ids cannot be stored or looked up.
MAX_SQL_INT = 2**63 - 1
#: An outbox item with what it came from (its raw webhook and account).
ITEM_SQL = "SELECT o.*, i.raw, i.account FROM outbox o JOIN inbound i ON i.id = o.inbound_id"


class OutboxQueue(StoreEngine):
    @abstractmethod
    async def claim(self, now: float, limit: int, owner: str, lease: float) -> list[OutboxItem]:
        """Claim up to ``limit`` due items for ``owner`` until ``now + lease``: each the oldest pending item of its
        chat, none claimed by anyone else (a lapsed claim is free again)."""

    async def release_claims(self, owner: str, ids: Sequence[int] | None = None) -> int:
        """Give back what ``owner`` claimed and did not finish (all of it: a replica stopping cleanly)."""
        only = "" if ids is None else f" AND id IN ({', '.join('?' for _ in ids) or 'NULL'})"
        done = await self._write("UPDATE outbox SET claimed_by = NULL, claimed_until = NULL"
                                 f" WHERE claimed_by = ? AND status = 'pending'{only}", (owner, *(ids or ())))
        return done.count

    async def outbox(self, status: str | None = None, limit: int = 100,
                     accounts: Sequence[int] | None = None) -> list[OutboxItem]:
        where, params = account_filter("i.account", accounts)
        if status:
            where, params = where + " AND o.status = ?", (*params, status)
        rows = await self._rows(f"{ITEM_SQL} WHERE 1=1{where} ORDER BY o.id LIMIT ?", (*params, limit))
        return [OutboxItem.from_row(r) for r in rows]

    async def save_payload(self, item_id: int, payload: dict[str, Any]) -> None:
        await self._write("UPDATE outbox SET payload = ? WHERE id = ?",
                          (json.dumps(payload, ensure_ascii=False), item_id))

    async def delivered(self, item_id: int, now: float) -> None:
        """Delivered: the prepared payload is dropped at once (the raw webhook stays until the retention sweep)."""
        await self._write("UPDATE outbox SET status = 'delivered', delivered_at = ?, attempts = attempts + 1,"
                          " last_error = NULL, payload = NULL, claimed_by = NULL, claimed_until = NULL WHERE id = ?",
                          (now, item_id))

    async def failed(self, item_id: int, error: str, next_at: float, dead: bool) -> None:
        await self._write("UPDATE outbox SET attempts = attempts + 1, last_error = ?, next_attempt_at = ?, status = ?,"
                          " claimed_by = NULL, claimed_until = NULL WHERE id = ? AND status = 'pending'",
                          (error[:500], next_at, "dead" if dead else "pending", item_id))

    async def oldest_pending(self) -> float | None:
        """When the oldest item still waiting for n8n arrived (None: nothing waits)."""
        rows = await self._rows("SELECT MIN(created_at) AS t FROM outbox WHERE status = 'pending'")
        return None if not rows or rows[0]["t"] is None else float(rows[0]["t"])

    async def replay(self, item_id: int | None, now: float, accounts: Sequence[int] | None = None) -> int:
        """Dead letters (one, or all) back to pending, due now, with a fresh attempt count."""
        if item_id is not None and not 0 < item_id <= MAX_SQL_INT:
            return 0
        owned, params = account_filter("account", accounts)
        sql = ("UPDATE outbox SET status = 'pending', attempts = 0, next_attempt_at = ?, claimed_by = NULL,"
               " claimed_until = NULL WHERE status = 'dead'"
               f" AND inbound_id IN (SELECT id FROM inbound WHERE 1=1{owned})")
        if item_id is None:
            return (await self._write(sql, (now, *params))).count
        return (await self._write(sql + " AND id = ?", (now, *params, item_id))).count
