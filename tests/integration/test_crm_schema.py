"""``--crm-schema``: a shop's own CRM tables (uuid ids, its own columns) in the harness's Postgres. The checks use
only the messages_history columns SPEC names and say which the shop's table lacks; a schema Postgres refuses is
named with Postgres's message; the harness still reads a table that lacks columns it would read."""

from __future__ import annotations

from pathlib import Path

import pytest

from avito_harness.real.crm import PostgresCrm
from avito_harness.real.n8n.rollout import schema_findings
from avito_harness.real.postgres import PostgresError, PostgresServer

SHOP = """
CREATE TABLE tenants (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), name text NOT NULL);
CREATE TABLE clients (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), tenant_id uuid REFERENCES tenants (id),
                      external_user_id text);
CREATE TABLE messages_history (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), tenant_id uuid, appeal_id integer,
                               channel text, body text, created_at timestamptz DEFAULT now());
"""


@pytest.fixture
def server(postgres_server: PostgresServer, postgres_url: str) -> PostgresServer:
    """The session's server, pointed at a fresh database of this test."""
    return PostgresServer(port=postgres_server.port, data_dir=postgres_server.data_dir,
                          user=postgres_server.user, database=postgres_url.rsplit("/", 1)[1])


def test_a_shops_history_table_is_judged_by_specs_columns_only(server: PostgresServer) -> None:
    server.apply_sql(SHOP, what="--crm-schema shop.sql")
    columns = server.columns("messages_history")
    assert columns is not None and "body" in columns
    (finding,) = schema_findings(columns)
    assert finding.code == "history_row_wrong" and "has no column message_type, text" in finding.message
    assert schema_findings(None) == []  # no such table of the shop's: ours fills in
    crm = PostgresCrm(server.url)  # our tables fill in what the shop's schema lacks; theirs stay theirs
    try:
        with crm._lock:
            crm._db.execute(b"INSERT INTO messages_history (appeal_id, channel, body) VALUES (7, 'avito', 'x')")
        (row,) = crm.history()
        assert (row["appeal_id"], row["channel"], row["message_type"], row["status"]) == (7, "avito", None, None)
        assert crm.seller_rows() == set()
    finally:
        crm.close()


def test_a_schema_postgres_refuses_is_named_with_its_message(server: PostgresServer, tmp_path: Path) -> None:
    with pytest.raises(PostgresError, match="--crm-schema broken.sql: syntax error at or near"):
        server.apply_sql("CREATE TABLE (", what="--crm-schema broken.sql")
