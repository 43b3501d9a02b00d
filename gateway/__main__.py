"""``python -m gateway`` / ``avito-gateway``: serve the gateway with uvicorn."""

from __future__ import annotations

import logging
import sys

import uvicorn

from gateway.app import create_app
from gateway.settings import ConfigError, load_settings

__all__ = ["main"]


def main() -> int:
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"avito-gateway: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    uvicorn.run(create_app(settings), host=settings.server_host, port=settings.server_port, log_level="info")
    return 0


if __name__ == "__main__":
    sys.exit(main())
