"""The gateway's store, both engines: every test in tests/store runs once on SQLite and once on Postgres."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from avito_gateway.store import SqliteStore, Store

ENGINES = ["sqlite", "postgres"]


@pytest.fixture(params=ENGINES)
def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], Store]]:
    """Opens another handle on the same database (as another replica would); all are closed afterwards."""
    opened: list[Store] = []
    if request.param == "postgres":
        from avito_gateway.store.postgres import PostgresStore

        url = request.getfixturevalue("postgres_url")

        def make() -> Store:
            opened.append(PostgresStore(url))
            return opened[-1]
    else:
        def make() -> Store:
            opened.append(SqliteStore(tmp_path / "gateway.sqlite3"))
            return opened[-1]
    yield make
    for store in opened:
        asyncio.run(store.close())


@pytest.fixture
def store(open_store: Callable[[], Store]) -> Store:
    return open_store()
