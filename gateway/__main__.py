"""``python -m avito_gateway`` / ``avito-gateway``: serve the gateway with uvicorn."""

from __future__ import annotations

import logging
import socket
import sys

import uvicorn

from avito_gateway.accounts import load_accounts
from avito_gateway.app import create_app, open_store
from avito_gateway.settings import ConfigError, load_settings

__all__ = ["main"]


def main() -> int:
    try:
        settings = load_settings().check_data_dir()
        load_accounts(settings)
    except ConfigError as exc:
        print(f"avito-gateway: {exc}", file=sys.stderr)
        return 2
    try:
        open_store(settings).close()  # the database answers (and has our tables) before we listen
    except ConnectionError as exc:
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
