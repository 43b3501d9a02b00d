"""Several gateway processes on one real Postgres: the local-process version of the compose profile
``replicas`` (what a CRM host runs behind one address)."""

from __future__ import annotations

import concurrent.futures
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg

from avito_harness.stack.gateway_process import GatewayProcess, free_port
from avito_harness.stack.local import Stack
from tests.gateway.conftest import API_KEY, USER

SECRET = "replicas-webhook-secret"


@contextmanager
def replicas(sim: Stack, database_url: str, tmp_path: Path, count: int = 3,
             **env: str) -> Iterator[list[GatewayProcess]]:
    """``count`` gateways for the fake Avito's seeded account, sharing ``database_url``, started at once."""
    procs = [
        GatewayProcess(avito_url=sim.urls["avito"], n8n_webhook_url=f"{sim.urls['n8n']}/webhook/avito",
                       client_id="sim-client-id", client_secret="sim-client-secret", user_id=USER, api_key=API_KEY,
                       port=free_port(), data_dir=str(tmp_path / f"replica-{n}"),
                       extra_env={"DATABASE_URL": database_url, "REPLICA_ID": f"replica-{n}", "WEBHOOK_SECRET": SECRET,
                                  "OUTBOX_POLL_INTERVAL": "0.05", **env})
        for n in range(1, count + 1)
    ]
    try:
        with concurrent.futures.ThreadPoolExecutor(count) as pool:
            list(pool.map(GatewayProcess.start, procs))
        yield procs
    finally:
        for proc in procs:
            proc.stop()


def sql(database_url: str, query: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(database_url, autocommit=True) as db:
        cursor = db.execute(query, params)  # type: ignore[arg-type]
        return cursor.fetchall() if cursor.description else []


def webhook(message_id: str, chat_id: str, text: str, user_id: int = USER, created: int = 1_700_000_000, *,
            kind: str = "text", content: dict[str, Any] | None = None) -> dict[str, Any]:
    """A v3 message webhook as Avito delivers it (the customer 424242 writing; ``content`` for other kinds)."""
    return {"id": f"hook-{message_id}", "version": "v3.0.0", "timestamp": created, "payload": {"type": "message", "value": {
        "id": message_id, "chat_id": chat_id, "user_id": user_id, "author_id": 424242, "created": created,
        "type": kind, "chat_type": "u2u", "content": content if content is not None else {"text": text}}}}
