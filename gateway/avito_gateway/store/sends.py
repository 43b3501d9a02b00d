"""What the gateway sent: posted messages (echo recognition), sends under way, idempotency keys, rate slots."""

from __future__ import annotations

import json
from typing import Any

from avito_gateway.store.engine import StoreEngine, Tx
from avito_gateway.store.records import IdempotencyRecord, KeyClaim

__all__ = ["SendRecords"]


class SendRecords(StoreEngine):
    # --- our sends -----------------------------------------------------------------------------------------
    async def record_sent(self, message_id: str, chat_id: str, text: str | None, now: float) -> None:
        await self._write("INSERT INTO sent (message_id, chat_id, text, created_at) VALUES (?, ?, ?, ?)"
                          " ON CONFLICT (message_id) DO NOTHING", (message_id, chat_id, text, now))

    async def is_our_send(self, message_id: str) -> bool:
        return bool(await self._rows("SELECT 1 AS one FROM sent WHERE message_id = ?", (message_id,)))

    async def note_sending(self, chat_id: str, text_hash: str, now: float) -> None:
        """A send about to be posted, so that any replica recognises its echo before Avito answered it."""
        await self._write("INSERT INTO recent_sends (chat_id, text_hash, at) VALUES (?, ?, ?)",
                          (chat_id, text_hash, now))

    async def sent_or_sending(self, message_id: str, chat_id: str, text_hash: str, since: float) -> bool:
        """:meth:`is_our_send`, or a send of these words to this chat noted (by any replica) since ``since``."""
        return bool(await self._rows(
            "SELECT 1 AS one FROM sent WHERE message_id = ?"
            " UNION ALL SELECT 1 AS one FROM recent_sends WHERE chat_id = ? AND text_hash = ? AND at > ?",
            (message_id, chat_id, text_hash, since)))

    # --- idempotency keys ----------------------------------------------------------------------------------
    async def idempotency(self, key: str) -> IdempotencyRecord | None:
        rows = await self._rows("SELECT fingerprint, status, response, claimed_until, generation FROM idempotency"
                                " WHERE key = ?", (key,))
        return IdempotencyRecord.from_row(rows[0]) if rows else None

    async def claim_idempotency(self, key: str, fingerprint: str, now: float, until: float) -> KeyClaim | None:
        """The key is ours to run until ``until`` (None: someone else holds it, or it is finished): newly
        inserted, or left unfinished by a holder whose claim ran out (then ``taken_over``)."""
        done = await self._write(
            "INSERT INTO idempotency (key, fingerprint, created_at, claimed_until, generation) VALUES (?, ?, ?, ?, 1)"
            " ON CONFLICT (key) DO UPDATE SET claimed_until = excluded.claimed_until, created_at = excluded.created_at,"
            " generation = idempotency.generation + 1"
            " WHERE idempotency.fingerprint = excluded.fingerprint AND idempotency.status IS NULL"
            " AND (idempotency.claimed_until IS NULL OR idempotency.claimed_until <= ?) RETURNING generation",
            (key, fingerprint, now, until, now))
        if not done.rows:
            return None
        generation = int(done.rows[0]["generation"])
        return KeyClaim(generation, taken_over=generation > 1)

    async def _key_update(self, sql: str, key: str, generation: int, *params: Any) -> bool:
        done = await self._write(f"{sql} WHERE key = ? AND generation = ? AND status IS NULL", (*params, key, generation))
        return done.count == 1

    async def renew_idempotency(self, key: str, generation: int, until: float) -> bool:
        """False: the key was taken over (or finished) by another holder."""
        return await self._key_update("UPDATE idempotency SET claimed_until = ?", key, generation, until)

    async def finish_idempotency(self, key: str, generation: int, status: int, response: dict[str, Any]) -> bool:
        """Store the answer (False: ``generation`` no longer holds the key; the holder's answer stands)."""
        return await self._key_update("UPDATE idempotency SET status = ?, response = ?, claimed_until = NULL", key,
                                      generation, status, json.dumps(response, ensure_ascii=False))

    async def release_idempotency(self, key: str, generation: int) -> bool:
        """Nothing was posted: forget the claim, a repeat runs afresh."""
        return await self._key_update("DELETE FROM idempotency", key, generation)

    async def lapse_idempotency(self, key: str, generation: int, now: float) -> bool:
        """Whether the post landed is not known: the claim ends now but stays unfinished, so whoever runs the key
        next takes it over and reads the chat before posting."""
        return await self._key_update("UPDATE idempotency SET claimed_until = ?", key, generation, now)

    # --- shared rate limit ---------------------------------------------------------------------------------
    async def take_slots(self, scope: str, n: int, now: float, limit: int, window: float) -> float | None:
        """A sliding-window log kept in the database, so every replica counts the same requests: take ``n``
        slots of ``scope`` (None), or say how many seconds until they would be free. Reads a count, and the one
        slot that blocks only when over the limit (never the whole window)."""
        async def work(tx: Tx) -> float | None:
            await self._lock_scope(tx, scope)
            await tx.run("DELETE FROM rate_slots WHERE scope = ? AND at <= ?", (scope, now - window))
            taken = int((await tx.run("SELECT COUNT(*) AS n FROM rate_slots WHERE scope = ?", (scope,))).rows[0]["n"])
            if taken + n <= limit:
                marks = ", ".join("(?, ?)" for _ in range(n))
                await tx.run(f"INSERT INTO rate_slots (scope, at) VALUES {marks}", (scope, now) * n)
                return None
            if n > limit:
                return window
            # the slot whose expiry frees the n-th place is the (taken + n - limit)-th oldest
            blocking = (await tx.run("SELECT at FROM rate_slots WHERE scope = ? ORDER BY at LIMIT 1 OFFSET ?",
                                     (scope, taken + n - limit - 1))).rows[0]["at"]
            return min(window, max(0.0, float(blocking) + window - now))  # float sums may overshoot by an ulp

        return await self._tx(work)

    async def slots_remaining(self, scope: str, now: float, limit: int, window: float) -> int:
        rows = await self._rows("SELECT COUNT(*) AS n FROM rate_slots WHERE scope = ? AND at > ?", (scope, now - window))
        return max(0, limit - int(rows[0]["n"]))
