"""The outbox: customer messages waiting for n8n, claimed with a fenced lease before they are forwarded.

Only the oldest pending item of a chat can be claimed, which keeps each chat's order across replicas. A claim
is a lease (a killed replica's items come back when it runs out) and a fencing token: every claim of an item
counts its ``claim_generation`` up, and the holder's marks (delivered, failed, renewed, payload) are taken
only with the generation it claimed, so a replica that lost its claim (paused past its lease) changes
nothing. Items behind their chat's head wait with ``next_attempt_at`` = :data:`BEHIND_HEAD` until the head is
done, so a claim walks only the items that are due (an index range), not the whole backlog.
"""

from __future__ import annotations

import json
from abc import abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any

from avito_gateway.store.engine import StoreEngine, Tx, account_filter
from avito_gateway.store.records import BEHIND_HEAD, OutboxItem

__all__ = ["BEHIND_HEAD", "CHAT_HEAD", "DUE_SQL", "ITEM_SQL", "MAX_SQL_INT", "OutboxQueue", "QUEUE_SQL", "fenced"]

#: SQL integers are signed 64-bit; larger ids cannot be stored or looked up.
MAX_SQL_INT = 2**63 - 1
#: An outbox item with what it came from (its raw webhook and account).
ITEM_SQL = "SELECT o.*, i.raw, i.account FROM outbox o JOIN inbound i ON i.id = o.inbound_id"
#: ``o`` is the oldest pending item of its chat.
CHAT_HEAD = "o.id = (SELECT MIN(p.id) FROM outbox p WHERE p.chat_id = o.chat_id AND p.status = 'pending')"
#: The queued item for a new inbound row (params: inbound id, chat id, chat id, BEHIND_HEAD, now, now): due now
#: when its chat has nothing pending, else behind the head.
QUEUE_SQL = ("INSERT INTO outbox (inbound_id, chat_id, next_attempt_at, created_at) SELECT ?, ?,"
             " CASE WHEN EXISTS (SELECT 1 FROM outbox WHERE chat_id = ? AND status = 'pending') THEN ? ELSE ? END, ?")
#: Due candidates (params: now, now): heads only, earliest due first, along the (status, next_attempt_at) index.
DUE_SQL = (f"SELECT o.id FROM outbox o WHERE o.status = 'pending' AND o.next_attempt_at <= ?"
           f" AND (o.claimed_until IS NULL OR o.claimed_until <= ?) AND {CHAT_HEAD} ORDER BY o.next_attempt_at")
#: The next pending item of a chat becomes due (params: now, chat id, BEHIND_HEAD).
_PROMOTE_SQL = ("UPDATE outbox SET next_attempt_at = ? WHERE id = (SELECT MIN(id) FROM outbox WHERE chat_id = ?"
                " AND status = 'pending') AND next_attempt_at >= ?")


def fenced(held: Mapping[int, int]) -> tuple[str, tuple[int, ...]]:
    """``(id = ? AND claim_generation = ?) OR ...`` for items and the generation each was claimed with."""
    clause = " OR ".join("(id = ? AND claim_generation = ?)" for _ in held) or "1=0"
    return f"({clause})", tuple(v for pair in held.items() for v in pair)


class OutboxQueue(StoreEngine):
    @abstractmethod
    async def claim(self, now: float, limit: int, owner: str, lease: float) -> list[OutboxItem]:
        """Claim up to ``limit`` due items for ``owner`` until ``now + lease``: each the oldest pending item of its
        chat, none claimed by anyone else (a lapsed claim is free again), each with a new generation."""

    async def renew_claims(self, owner: str, held: Mapping[int, int], until: float) -> set[int]:
        """Extend ``owner``'s claims (item id -> generation) to ``until``; returns the ids still held. An item
        missing from the answer was taken over (or finished) by someone else: its holder must stop."""
        if not held:
            return set()
        where, params = fenced(held)
        done = await self._write(f"UPDATE outbox SET claimed_until = ? WHERE status = 'pending' AND claimed_by = ?"
                                 f" AND {where} RETURNING id", (until, owner, *params))
        return {int(r["id"]) for r in done.rows}

    async def release_claims(self, owner: str, held: Mapping[int, int] | None = None) -> int:
        """Give back what ``owner`` claimed and did not finish (``held``: these items at these generations;
        None: all of it, a replica stopping cleanly)."""
        only, params = ("", ()) if held is None else fenced(held)
        done = await self._write("UPDATE outbox SET claimed_by = NULL, claimed_until = NULL"
                                 f" WHERE claimed_by = ? AND status = 'pending'{' AND ' + only if only else ''}",
                                 (owner, *params))
        return done.count

    async def outbox(self, status: str | None = None, limit: int = 100,
                     accounts: Sequence[int] | None = None) -> list[OutboxItem]:
        where, params = account_filter("i.account", accounts)
        if status:
            where, params = where + " AND o.status = ?", (*params, status)
        rows = await self._rows(f"{ITEM_SQL} WHERE 1=1{where} ORDER BY o.id LIMIT ?", (*params, limit))
        return [OutboxItem.from_row(r) for r in rows]

    async def delivered(self, item_id: int, generation: int, now: float) -> bool:
        """Delivered (by the holder of ``generation``; False: it no longer holds the item, nothing changed). The
        prepared payload is dropped at once; the chat's next item becomes due."""
        async def work(tx: Tx) -> bool:
            rows = (await tx.run(
                "UPDATE outbox SET status = 'delivered', delivered_at = ?, attempts = attempts + 1, last_error = NULL,"
                " payload = NULL, claimed_by = NULL, claimed_until = NULL"
                " WHERE id = ? AND claim_generation = ? AND status = 'pending' RETURNING chat_id",
                (now, item_id, generation))).rows
            if rows:
                await tx.run(_PROMOTE_SQL, (now, rows[0]["chat_id"], BEHIND_HEAD))
            return bool(rows)

        return await self._tx(work)

    async def failed(self, item_id: int, generation: int, error: str, next_at: float, dead: bool,
                     payload: dict[str, Any] | None = None) -> bool:
        """One failed attempt (False: the caller no longer holds the item), keeping the ``payload`` it prepared
        for the next attempt. A dead letter lets its chat go on."""
        prepared = None if payload is None else json.dumps(payload, ensure_ascii=False)

        async def work(tx: Tx) -> bool:
            rows = (await tx.run(
                "UPDATE outbox SET attempts = attempts + 1, last_error = ?, next_attempt_at = ?, status = ?,"
                " claimed_by = NULL, claimed_until = NULL, payload = COALESCE(?, payload)"
                " WHERE id = ? AND claim_generation = ? AND status = 'pending' RETURNING chat_id",
                (error[:500], next_at, "dead" if dead else "pending", prepared, item_id, generation))).rows
            if rows and dead:
                await tx.run(_PROMOTE_SQL, (next_at, rows[0]["chat_id"], BEHIND_HEAD))
            return bool(rows)

        return await self._tx(work)

    async def unstick_heads(self, now: float) -> int:
        """Make due any chat head still waiting as if behind another item (a webhook stored by one replica while
        another finished the head, on PostgreSQL, can miss the hand-over); returns how many."""
        done = await self._write(
            f"UPDATE outbox SET next_attempt_at = ? WHERE status = 'pending' AND next_attempt_at >= ? AND id IN"
            f" (SELECT o.id FROM outbox o WHERE o.status = 'pending' AND o.next_attempt_at >= ? AND {CHAT_HEAD})",
            (now, BEHIND_HEAD, BEHIND_HEAD))
        return done.count

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
