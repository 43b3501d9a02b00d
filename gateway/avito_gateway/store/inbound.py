"""Inbound webhooks and refusals: persisted (deduplicated on account + message id) before Avito gets its 200."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from avito_gateway.store.engine import StoreEngine, Tx, account_filter
from avito_gateway.store.outbox import QUEUE_SQL
from avito_gateway.store.records import BEHIND_HEAD, InboundRecord

__all__ = ["InboundTables", "REJECTED_BODY_CHARS"]

#: Enough of a refused body to see what it was; junk cannot grow the database.
REJECTED_BODY_CHARS = 4096


class InboundTables(StoreEngine):
    async def record_inbound(
        self, *, account: int, message_id: str, chat_id: str, author_id: int | None, kind: str, raw: dict[str, Any],
        now: float, forward: bool,
    ) -> bool:
        """Store one webhook message (and its outbox entry, in the same transaction); False if it was already
        there."""
        async def work(tx: Tx) -> bool:
            row = (await tx.run(
                "INSERT INTO inbound (account, message_id, chat_id, author_id, kind, received_at, raw)"
                " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (account, message_id) DO NOTHING RETURNING id",
                (account, message_id, chat_id, author_id, kind, now, json.dumps(raw, ensure_ascii=False)),
            )).rows
            if not row:
                return False
            if forward:
                await tx.run(QUEUE_SQL, (row[0]["id"], chat_id, chat_id, BEHIND_HEAD, now, now))
            return True

        return await self._tx(work)

    async def record_rejected(self, reason: str, body: str, now: float, account: int | None = None) -> None:
        await self._write("INSERT INTO rejected (received_at, reason, body, account) VALUES (?, ?, ?, ?)",
                          (now, reason[:500], body[:REJECTED_BODY_CHARS], account))

    async def inbound(self, kind: str | None = None, limit: int = 100,
                      accounts: Sequence[int] | None = None) -> list[InboundRecord]:
        where, params = account_filter("account", accounts)
        if kind:
            where, params = where + " AND kind = ?", (*params, kind)
        rows = await self._rows(f"SELECT * FROM inbound WHERE 1=1{where} ORDER BY id DESC LIMIT ?", (*params, limit))
        return [InboundRecord.from_row(r) for r in rows]

    async def rejected(self, limit: int = 100, accounts: Sequence[int] | None = None) -> list[dict[str, Any]]:
        where, params = account_filter("account", accounts, unattributed=True)
        rows = await self._rows(
            f"SELECT id, received_at, reason, body FROM rejected WHERE 1=1{where} ORDER BY id DESC LIMIT ?",
            (*params, limit))
        return [dict(r) for r in rows]

    async def counts(self, accounts: Sequence[int] | None = None) -> dict[str, int]:
        where, params = account_filter("account", accounts)
        kinds = await self._rows(f"SELECT kind, COUNT(*) AS n FROM inbound WHERE 1=1{where} GROUP BY kind", params)
        owned, params2 = account_filter("i.account", accounts)
        outbox = await self._rows("SELECT o.status, COUNT(*) AS n FROM outbox o JOIN inbound i ON i.id = o.inbound_id"
                                  f" WHERE 1=1{owned} GROUP BY o.status", params2)
        rwhere, rparams = account_filter("account", accounts, unattributed=True)
        rejected = (await self._rows(f"SELECT COUNT(*) AS n FROM rejected WHERE 1=1{rwhere}", rparams))[0]["n"]
        return {**{f"inbound_{r['kind']}": int(r["n"]) for r in kinds},
                **{f"outbox_{r['status']}": int(r["n"]) for r in outbox}, "rejected": int(rejected)}

    async def is_seller_reply(self, message_id: str) -> bool:
        """A message our account wrote in the Avito app (it came as a webhook, and we did not send it)."""
        return bool(await self._rows("SELECT 1 AS one FROM inbound WHERE message_id = ? AND kind = 'seller_reply'",
                                     (message_id,)))
