"""``python -m avito_gateway`` / ``avito-gateway``: serve the gateway with uvicorn."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import sys
from typing import IO

import uvicorn

from avito_gateway.accounts import load_accounts
from avito_gateway.app import create_app, open_store
from avito_gateway.errors import DatabaseUnreachableError
from avito_gateway.settings import ConfigError, GatewaySettings, load_settings

__all__ = ["main"]


def main() -> int:
    try:
        settings = load_settings().check_data_dir()
        load_accounts(settings)
    except ConfigError as exc:
        print(f"avito-gateway: {exc}", file=sys.stderr)
        return 2
    try:
        held = _own_data_dir(settings)  # noqa: F841 - held (locked) for the life of the process
        asyncio.run(open_store(settings).close())  # the database answers (and has our tables) before we listen
    except (DatabaseUnreachableError, ConfigError) as exc:
        print(f"avito-gateway: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        sock = _listen(settings.server_host, settings.server_port)
    except OSError as exc:
        print(f"avito-gateway: cannot listen on {settings.server_host}:{settings.server_port}: {exc.strerror}",
              file=sys.stderr)
        return 1
    config = uvicorn.Config(create_app(settings), log_level="info")
    print(f"avito-gateway listening on http://{settings.server_host}:{sock.getsockname()[1]}", flush=True)
    uvicorn.Server(config).run(sockets=[sock])
    return 0


def _own_data_dir(settings: GatewaySettings) -> IO[str] | None:
    """One gateway per SQLite file: a second process on the same DATA_DIR would take over the first one's outbox
    claims on opening (the file belongs to one process). Replicas share a Postgres store instead."""
    if settings.database_url is not None:
        return None
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not on POSIX
        return None
    handle = (settings.data_dir / "gateway.lock").open("a+", encoding="utf-8")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        other = handle.read().strip() or "?"
        handle.close()
        raise ConfigError(f"DATA_DIR {str(settings.data_dir)!r} is in use by another gateway (pid {other}): one "
                          "process per SQLite file; for several replicas set DATABASE_URL=postgresql://...") from None
    handle.truncate(0)
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle


def _listen(host: str, port: int) -> socket.socket:
    """A listening socket with TCP_NODELAY, which accepted connections inherit: without it every answer
    waits ~40 ms between uvicorn's header and body writes (Nagle + delayed ACK)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    sock.listen(2048)
    return sock


if __name__ == "__main__":
    sys.exit(main())
