"""BatteryCRM's tables as the fake n8n keeps them: appeals, batches, messages_history, rejected.

SQLite (a file by default, ``:memory:`` in unit tests). The tables are
created from the documented contract, ``contracts/crm/schema.sql``.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path
from typing import Any

from avito_harness.paths import contracts_dir

__all__ = ["CrmStore", "SCHEMA"]

def _schema() -> str:
    """The DDL, read from the documented contract itself (one definition)."""
    return (contracts_dir() / "crm" / "schema.sql").read_text(encoding="utf-8")


SCHEMA = _schema()

TABLES = ("messages_history", "batches", "appeals", "rejected", "inbound_messages")


class CrmStore:
    def __init__(self, path: str | Path = ":memory:") -> None:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.path = str(path)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def reset(self) -> None:
        with self._lock:
            for table in TABLES:
                self._db.execute(f"DELETE FROM {table}")  # noqa: S608 - fixed names

    def _one(self, sql: str, args: tuple[Any, ...]) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute(sql, args).fetchone()
        return dict(row) if row else None

    def _all(self, sql: str, args: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(r) for r in self._db.execute(sql, args).fetchall()]

    # --- inbound -----------------------------------------------------------
    def claim_inbound(self, channel: str, external_message_id: str, now: str) -> bool:
        """True the first time this message id is seen on this channel (a redelivery gets False)."""
        with self._lock:
            cur = self._db.execute("INSERT OR IGNORE INTO inbound_messages (channel, external_message_id, received_at)"
                                   " VALUES (?, ?, ?)", (channel, external_message_id, now))
            return cur.rowcount == 1

    # --- appeals -----------------------------------------------------------
    def upsert_appeal(self, *, tenant_id: str, channel: str, external_user_id: str, external_chat_id: str,
                      client_name: str | None, status: str, now: str) -> tuple[dict[str, Any], bool]:
        """The client's appeal in this chat, created or moved to ``status``; True when created."""
        with self._lock:
            found = self._one(
                "SELECT * FROM appeals WHERE tenant_id = ? AND channel = ? AND external_user_id = ? AND external_chat_id = ?",
                (tenant_id, channel, external_user_id, external_chat_id),
            )
            if found is None:
                cur = self._db.execute(
                    "INSERT INTO appeals (tenant_id, channel, external_user_id, external_chat_id, client_name, status,"
                    " batches, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, 1, ?, ?)",
                    (tenant_id, channel, external_user_id, external_chat_id, client_name, status, now, now),
                )
                return self.appeal(int(cur.lastrowid or 0)) or {}, True
            self._db.execute(
                "UPDATE appeals SET status = ?, batches = batches + 1, updated_at = ?,"
                " client_name = COALESCE(?, client_name) WHERE id = ?",
                (status, now, client_name, found["id"]),
            )
            return self.appeal(found["id"]) or {}, False

    def set_status(self, appeal_id: int, status: str, now: str) -> None:
        with self._lock:
            self._db.execute("UPDATE appeals SET status = ?, updated_at = ? WHERE id = ?", (status, now, appeal_id))

    def appeal(self, appeal_id: int) -> dict[str, Any] | None:
        return self._one("SELECT * FROM appeals WHERE id = ?", (appeal_id,))

    def appeal_for_chat(self, channel: str, external_chat_id: str) -> dict[str, Any] | None:
        """The latest appeal of one chat (a seller's reply belongs to it)."""
        return self._one("SELECT * FROM appeals WHERE channel = ? AND external_chat_id = ? ORDER BY id DESC LIMIT 1",
                         (channel, external_chat_id))

    def appeals(self) -> list[dict[str, Any]]:
        return self._all("SELECT * FROM appeals ORDER BY id")

    # --- batches -----------------------------------------------------------
    def add_batch(self, *, appeal_id: int, tenant_id: str, channel: str, external_user_id: str, external_chat_id: str,
                  text: str, messages: list[dict[str, Any]], opened_at: str, closed_at: str) -> int:
        with self._lock:
            cur = self._db.execute(
                "INSERT INTO batches (appeal_id, tenant_id, channel, external_user_id, external_chat_id, text, messages,"
                " opened_at, closed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (appeal_id, tenant_id, channel, external_user_id, external_chat_id, text,
                 json.dumps(messages, ensure_ascii=False), opened_at, closed_at),
            )
            return int(cur.lastrowid or 0)

    def batches(self, appeal_id: int | None = None) -> list[dict[str, Any]]:
        rows = self._all("SELECT * FROM batches" + (" WHERE appeal_id = ?" if appeal_id else "") + " ORDER BY id",
                         (appeal_id,) if appeal_id else ())
        for row in rows:
            row["messages"] = json.loads(row["messages"])
        return rows

    # --- history -----------------------------------------------------------
    def add_history(self, *, tenant_id: str, appeal_id: int, message_type: str, channel: str, text: str,
                    external_message_id: str | None, status: str, error: str | None, now: str) -> int:
        with self._lock:
            cur = self._db.execute(
                "INSERT INTO messages_history (tenant_id, appeal_id, message_type, channel, text, external_message_id,"
                " status, error, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (tenant_id, appeal_id, message_type, channel, text, external_message_id, status, error, now),
            )
            return int(cur.lastrowid or 0)

    def history(self, appeal_id: int | None = None) -> list[dict[str, Any]]:
        return self._all("SELECT * FROM messages_history" + (" WHERE appeal_id = ?" if appeal_id else "") + " ORDER BY id",
                         (appeal_id,) if appeal_id else ())

    # --- rejected ----------------------------------------------------------
    def reject(self, reason: str, body: Any, now: str) -> None:
        with self._lock:
            self._db.execute("INSERT INTO rejected (received_at, reason, body) VALUES (?, ?, ?)",
                             (now, reason, json.dumps(body, ensure_ascii=False, default=str)[:65536]))

    def rejected(self) -> list[dict[str, Any]]:
        return self._all("SELECT * FROM rejected ORDER BY id")
