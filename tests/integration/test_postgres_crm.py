"""The CRM tables on a real PostgreSQL server: contracts/crm/schema.sql as n8n's Postgres node will write them."""

from __future__ import annotations

import pytest

from avito_harness.real.postgres import PostgresServer

psycopg = pytest.importorskip("psycopg")


@pytest.fixture(scope="module")
def server(postgres_server: PostgresServer) -> PostgresServer:
    postgres_server.apply_schema()
    postgres_server.apply_schema()  # idempotent: a second start against the same data finds its tables
    return postgres_server


def test_bat_out_writes_messages_history_as_the_workflow_does(server: PostgresServer) -> None:
    with psycopg.connect(server.url, autocommit=True) as db:
        appeal = db.execute(
            "INSERT INTO appeals (tenant_id, channel, external_user_id, external_chat_id, client_name, status,"
            " batches, created_at, updated_at) VALUES ('t1', 'avito', '42', 'u2i-x', 'Ольга', 'open', 1, 'now', 'now')"
            " RETURNING id").fetchone()[0]
        row = db.execute(
            "INSERT INTO messages_history (tenant_id, appeal_id, message_type, channel, text, external_message_id,"
            " status, created_at) VALUES ('t1', %s, 'operator', 'avito', 'Здравствуйте', 'm-1', 'sent', 'now')"
            " RETURNING id, text", (appeal,)).fetchone()
    assert row[0] >= 1 and row[1] == "Здравствуйте"  # ids numbered by the server, Cyrillic kept


@pytest.mark.parametrize(("sql", "problem"), [
    ("INSERT INTO messages_history (tenant_id, appeal_id, message_type, channel, text, status, created_at)"
     " VALUES ('t1', 999999, 'operator', 'avito', 'x', 'sent', 'now')", psycopg.errors.ForeignKeyViolation),
    ("WITH a AS (INSERT INTO appeals (tenant_id, channel, external_user_id, external_chat_id, status, created_at,"
     " updated_at) VALUES ('t1', 'avito', 'check', 'u2i-check', 'open', 'now', 'now') RETURNING id)"
     " INSERT INTO messages_history (tenant_id, appeal_id, message_type, channel, text, status, created_at)"
     " SELECT 't1', id, 'bot', 'avito', 'x', 'sent', 'now' FROM a", psycopg.errors.CheckViolation),
    ("INSERT INTO inbound_messages (channel, external_message_id, received_at) VALUES ('avito', 'dup', 'now'),"
     " ('avito', 'dup', 'now')", psycopg.errors.UniqueViolation),
])
def test_the_contracts_constraints_hold_on_postgres(server: PostgresServer, sql: str, problem: type) -> None:
    with psycopg.connect(server.url, autocommit=True) as db, pytest.raises(problem):
        db.execute(sql)
