"""BatteryCRM's tables on a real Postgres, as the real n8n workflows write them: read by the harness, reset per scenario.

The same questions :class:`avito_harness.fakes.n8n.crm.CrmStore` answers for the Python flows (appeals, batches,
messages_history, rejected), plus what the workflows read at run time (``crm_settings``, ``tenant_accounts``).
"""

from __future__ import annotations

import json
import threading
from typing import Any

import psycopg
from psycopg.rows import dict_row

from avito_harness.real.postgres import postgres_schema

__all__ = ["PostgresCrm"]

#: the columns of messages_history the harness reads (a shop's own table may lack some: they read as None)
HISTORY_READ = ("id", "tenant_id", "appeal_id", "message_type", "channel", "text", "external_message_id", "status",
                "error")
#: cleared on every reset; crm_settings is rewritten instead
TABLES = ("messages_history", "batches", "appeals", "rejected", "inbound_messages", "batch_items", "open_batches",
          "tenant_accounts")


class PostgresCrm:
    def __init__(self, url: str) -> None:
        self.url = url
        self._lock = threading.Lock()
        self._db = psycopg.connect(url, autocommit=True, row_factory=dict_row)
        self._db.execute(postgres_schema().encode())

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _all(self, sql: str, args: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._db.execute(sql.encode(), args).fetchall())

    def _run(self, sql: str, args: tuple[Any, ...] = ()) -> None:
        with self._lock:
            self._db.execute(sql.encode(), args)

    # --- what the workflows read -----------------------------------------------------------------------------
    def reset(self, settings: dict[str, str | None], tenants: dict[str, str]) -> None:
        """Empty CRM tables (ids from 1) and these run-time settings; in-flight executions find nothing to close."""
        with self._lock, self._db.transaction():
            self._db.execute(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE".encode())
            self._write_settings(settings, tenants)

    def configure(self, settings: dict[str, str | None], tenants: dict[str, str] | None = None) -> None:
        with self._lock, self._db.transaction():
            self._write_settings(settings, tenants)

    def _write_settings(self, settings: dict[str, str | None], tenants: dict[str, str] | None) -> None:
        for key, value in settings.items():
            self._db.execute(b"INSERT INTO crm_settings (key, value) VALUES (%s, %s)"
                             b" ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value", (key, value))
        if tenants is not None:
            self._db.execute(b"DELETE FROM tenant_accounts")
            for key, tenant in tenants.items():
                channel, _, user = key.partition(":")
                self._db.execute(b"INSERT INTO tenant_accounts (channel, external_user_id, tenant_id)"
                                 b" VALUES (%s, %s, %s)", (channel, user, tenant))

    # --- what the harness reads -------------------------------------------------------------------------------
    def appeals(self) -> list[dict[str, Any]]:
        return self._all("SELECT * FROM appeals ORDER BY id")

    def appeal(self, appeal_id: int) -> dict[str, Any] | None:
        found = self._all("SELECT * FROM appeals WHERE id = %s", (appeal_id,))
        return found[0] if found else None

    def batches(self, appeal_id: int | None = None) -> list[dict[str, Any]]:
        where = " WHERE appeal_id = %s" if appeal_id else ""
        rows = self._all(f"SELECT * FROM batches{where} ORDER BY id", (appeal_id,) if appeal_id else ())
        for row in rows:
            row["messages"] = json.loads(row["messages"])
        return rows

    def history(self, appeal_id: int | None = None) -> list[dict[str, Any]]:
        """The rows, each with every column the harness reads (None where a shop's own table lacks it)."""
        where = " WHERE appeal_id = %s" if appeal_id else ""
        args = (appeal_id,) if appeal_id else ()
        try:
            rows = self._all(f"SELECT * FROM messages_history{where} ORDER BY id", args)
        except psycopg.errors.UndefinedColumn:  # a shop's own table (--crm-schema) without the columns we order by
            rows = self._all(f"SELECT * FROM messages_history{where}", args)
        for row in rows:
            for name in HISTORY_READ:
                row.setdefault(name, None)
        return rows

    def rejected(self) -> list[dict[str, Any]]:
        return self._all("SELECT * FROM rejected ORDER BY id")

    def batch_items(self) -> list[dict[str, Any]]:
        rows = self._all("SELECT * FROM batch_items ORDER BY id")
        for row in rows:
            row["message"] = json.loads(row["message"])
        return rows

    def seller_rows(self) -> set[int]:
        """messages_history rows that are the seller's own app replies (their id is an inbound Avito message)."""
        try:
            rows = self._all("SELECT h.id FROM messages_history h JOIN inbound_messages i"
                             " ON i.channel = h.channel AND i.external_message_id = h.external_message_id")
        except psycopg.errors.UndefinedColumn:  # a shop's own table (--crm-schema) without those columns
            return set()
        return {int(r["id"]) for r in rows}

    def open_batches(self) -> int:
        return int(self._all("SELECT count(*) AS n FROM open_batches")[0]["n"])
