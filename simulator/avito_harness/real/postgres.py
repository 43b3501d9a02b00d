"""A real PostgreSQL server for the CRM tables, started on a free loopback port in a temporary data dir.

BatteryCRM's workflows write ``messages_history`` with n8n's Postgres node, so the real pipeline needs a
real server, never a mock. The binaries come from Debian's ``postgresql`` package (``.ci/run`` installs it
when missing): the distribution's own, security-patched server, no Docker, nothing built by hand. A root
process cannot run ``initdb``; as root the server runs as the ``postgres`` system user the package creates.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from avito_harness.paths import contracts_dir
from avito_harness.stack.gateway_process import free_port

__all__ = ["PostgresError", "PostgresServer", "find_binaries", "postgres_schema"]


class PostgresError(RuntimeError):
    pass


def find_binaries() -> Path | None:
    """The directory holding ``initdb`` and ``pg_ctl``: on PATH, else Debian's /usr/lib/postgresql/<version>/bin."""
    on_path = shutil.which("pg_ctl")
    if on_path and shutil.which("initdb"):
        return Path(on_path).resolve().parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: int(p.parent.parent.name))
    return versions[-1].parent if versions else None


def postgres_schema() -> str:
    """``contracts/crm/schema.sql`` as written: the Postgres dialect (the Python flows' SQLite adapts it)."""
    return (contracts_dir() / "crm" / "schema.sql").read_text(encoding="utf-8")


@dataclass
class PostgresServer:
    port: int = 0  # 0: a free one
    data_dir: Path | None = None  # None: a fresh temporary directory, removed on stop
    user: str = "harness"
    database: str = "batterycrm"
    _owned: bool = field(default=False, repr=False)

    @property
    def url(self) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{self.database}"

    def _as_server_user(self, command: list[str]) -> list[str]:
        return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command

    def _run(self, command: list[str]) -> None:
        done = subprocess.run(self._as_server_user(command), capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise PostgresError(f"{Path(command[0]).name} failed: {(done.stderr or done.stdout).strip()[-500:]}")

    def start(self) -> PostgresServer:
        binaries = find_binaries()
        if binaries is None:
            raise PostgresError("no PostgreSQL server here: install Debian's postgresql package (.ci/run does)")
        if self.data_dir is None:
            self.data_dir, self._owned = Path(tempfile.mkdtemp(prefix="avito-harness-pg-")), True
        if os.geteuid() == 0:
            shutil.chown(self.data_dir, "postgres", "postgres")
        self.port = self.port or free_port()
        cluster = self.data_dir / "cluster"
        if not cluster.exists():
            self._run([str(binaries / "initdb"), "-D", str(cluster), "-U", self.user, "--auth=trust", "-E", "UTF8",
                       "--no-sync", "--no-instructions"])
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.data_dir} -c fsync=off -c full_page_writes=off"
        self._run([str(binaries / "pg_ctl"), "-D", str(cluster), "-o", options, "-l", str(self.data_dir / "server.log"),
                   "-w", "-t", "60", "start"])
        self._create_database()
        return self

    def _create_database(self) -> None:
        self.new_database(self.database)

    def new_database(self, name: str) -> str:
        """The database ``name`` on this server (made if it is not there); its URL."""
        import psycopg

        with psycopg.connect(f"postgresql://{self.user}@127.0.0.1:{self.port}/postgres", autocommit=True) as db:
            if db.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
                db.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{name}"

    def apply_schema(self) -> None:
        """The CRM tables (idempotent: ``CREATE TABLE IF NOT EXISTS``)."""
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as db:
            db.execute(postgres_schema())

    def apply_sql(self, sql: str, *, what: str) -> None:
        """A user's SQL (``--crm-schema``); :class:`PostgresError` names ``what`` and Postgres's message."""
        import psycopg

        try:
            with psycopg.connect(self.url, autocommit=True) as db:
                db.execute(sql.encode())
        except psycopg.Error as exc:
            raise PostgresError(f"{what}: {str(exc).strip().splitlines()[0]}") from None

    def columns(self, table: str) -> list[str] | None:
        """The columns of ``table`` in the public schema (None: no such table)."""
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as db:
            rows = db.execute("SELECT column_name FROM information_schema.columns WHERE table_schema = 'public' "
                              "AND table_name = %s ORDER BY ordinal_position", (table,)).fetchall()
        return [str(r[0]) for r in rows] or None

    def stop(self) -> None:
        binaries = find_binaries()
        if binaries is not None and self.data_dir is not None and (self.data_dir / "cluster").exists():
            subprocess.run(self._as_server_user([str(binaries / "pg_ctl"), "-D", str(self.data_dir / "cluster"),
                                                 "-m", "fast", "-w", "stop"]), capture_output=True, timeout=60)
        if self._owned and self.data_dir is not None:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
