"""One schema, two engines: the tables, columns and indexes SQLite and PostgreSQL end up with are the same, also
for a database an older gateway made (it gets the later columns on opening)."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import psycopg

from avito_gateway.store import SqliteStore
from avito_gateway.store.postgres import PostgresStore
from avito_gateway.store.schema import LATER_COLUMNS, SCHEMA_NAME

Shape = dict[str, set[str]]


def sqlite_shape(path: Path) -> tuple[Shape, set[str]]:
    with sqlite3.connect(path) as db:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        columns = {t: {r[1] for r in db.execute(f"PRAGMA table_info({t})")} for t in tables}
        indexes = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL")}
    return columns, indexes


def postgres_shape(url: str) -> tuple[Shape, set[str]]:
    with psycopg.connect(url) as db:
        columns: Shape = {}
        for table, column in db.execute("SELECT table_name, column_name FROM information_schema.columns"
                                        " WHERE table_schema = %s", (SCHEMA_NAME,)):
            columns.setdefault(table, set()).add(column)
        indexes = {r[0] for r in db.execute("SELECT indexname FROM pg_indexes WHERE schemaname = %s"
                                            " AND indexdef NOT LIKE '%%UNIQUE%%'", (SCHEMA_NAME,))}
    return columns, indexes


def test_both_engines_have_the_same_tables_columns_and_indexes(tmp_path: Path, postgres_url: str) -> None:
    asyncio.run(SqliteStore(tmp_path / "gateway.sqlite3").close())
    asyncio.run(PostgresStore(postgres_url).close())
    lite_columns, lite_indexes = sqlite_shape(tmp_path / "gateway.sqlite3")
    pg_columns, pg_indexes = postgres_shape(postgres_url)
    assert lite_columns == pg_columns
    assert lite_indexes == pg_indexes
    assert {"outbox_due", "outbox_chat_pending", "inbound_message"} <= lite_indexes


def test_a_database_made_before_the_later_columns_gets_them_on_either_engine(tmp_path: Path,
                                                                             postgres_url: str) -> None:
    asyncio.run(PostgresStore(postgres_url).close())
    with psycopg.connect(postgres_url, autocommit=True) as db:
        for table, column, _ in LATER_COLUMNS:
            db.execute(f"ALTER TABLE {SCHEMA_NAME}.{table} DROP COLUMN {column}")
    path = tmp_path / "old.sqlite3"
    asyncio.run(SqliteStore(path).close())
    with sqlite3.connect(path) as db:
        for table, column, _ in LATER_COLUMNS:
            db.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
    asyncio.run(PostgresStore(postgres_url).close())
    asyncio.run(SqliteStore(path).close())
    for columns in (sqlite_shape(path)[0], postgres_shape(postgres_url)[0]):
        assert all(column in columns[table] for table, column, _ in LATER_COLUMNS), columns
