"""The gateway as an ASGI app: ``create_app(settings)``."""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import FastAPI

from avito_gateway import __version__
from avito_gateway.accounts import Account, load_accounts
from avito_gateway.avito_client import AvitoClient
from avito_gateway.clock import Clock, SystemClock
from avito_gateway.deps import Deployment, Services
from avito_gateway.echoes import EchoBook
from avito_gateway.errors import StorageError, install_error_handlers
from avito_gateway.held_writes import HeldWrites
from avito_gateway.idempotency import IdempotencyKeys
from avito_gateway.images import ImageFetcher
from avito_gateway.inbound import Inbound
from avito_gateway.limits import BodyLimitMiddleware
from avito_gateway.logsafe import install_access_log_redaction
from avito_gateway.outbox import Forwarder
from avito_gateway.ratelimit import Limiter, SharedLimiter, SlidingWindowLimiter
from avito_gateway.retention import Retention
from avito_gateway.routes import chats, health, send, webhooks
from avito_gateway.sending import Sender
from avito_gateway.settings import GatewaySettings
from avito_gateway.store import SqliteStore, Store
from avito_gateway.webhook_auth import RECEIVER_PATH, WebhookAuth

__all__ = ["create_app", "open_store"]

DB_NAME = "gateway.sqlite3"


def open_store(settings: GatewaySettings) -> Store:
    """Postgres when DATABASE_URL is set (replicas share it), else the SQLite file in DATA_DIR."""
    if settings.database_url:
        from avito_gateway.store.postgres import PostgresStore

        return PostgresStore(settings.database_url, connect_timeout=settings.connection_timeout,
                             timeout=settings.database_timeout)
    return SqliteStore(settings.data_dir / DB_NAME)


def _limiter(settings: GatewaySettings, store: Store, account: Account, clock: Clock) -> Limiter:
    if store.shared:  # the limit is the deployment's: every replica counts in the same log
        return SharedLimiter(store, f"account:{account.name}", settings.rate_limit_requests,
                             settings.rate_limit_window, clock)
    return SlidingWindowLimiter(settings.rate_limit_requests, settings.rate_limit_window, clock)


def create_app(
    settings: GatewaySettings,
    *,
    clock: Clock | None = None,
    avito_transport: httpx.AsyncBaseTransport | None = None,
    n8n_transport: httpx.AsyncBaseTransport | None = None,
    run_forwarder: bool = True,
) -> FastAPI:
    """Build the gateway. Transports replace the network in tests; ``run_forwarder=False`` leaves
    forwarding to explicit ``POST /api/outbox/flush`` calls."""
    settings.check()
    accounts = load_accounts(settings)
    clock = clock or SystemClock()
    owner = settings.replica_id or f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(2)}"

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = open_store(settings)
        served: list[Services] = []
        deployment = Deployment(served)
        held = HeldWrites(clock)
        inbound = Inbound(store, clock, deployment.by_user_id, lambda: [s.account.user_id for s in deployment.accounts])
        forwarder = Forwarder(settings, store, clock, deployment.by_user_id, owner=owner, held=held,
                              transport=n8n_transport)
        images = ImageFetcher(settings)
        for account in accounts:
            avito = AvitoClient(settings, clock, account, transport=avito_transport)
            echoes = EchoBook(store, clock)
            served.append(Services(
                settings, clock, store, avito, _limiter(settings, store, account, clock), echoes,
                IdempotencyKeys(settings, store, clock, account, held), Sender(settings, store, avito, clock, echoes, held),
                images,
                inbound, forwarder, await WebhookAuth.open(settings, store, account, clock), account,
                None if len(accounts) == 1 else [account.user_id or 0],
            ))
        deployment.reindex()
        retention = Retention(settings, store, clock)
        app.state.deployment = deployment
        app.state.services = deployment.default
        app.state.retention = retention
        install_access_log_redaction()
        for s in served:
            s.webhook_auth.warn_if_open()
        if run_forwarder:
            forwarder.start()
        retention.periodic.start()
        held.start()
        try:
            yield
        finally:
            await retention.periodic.stop()
            await forwarder.stop()
            await held.flush(now_or_never=True)  # what the store still refuses is logged by stop()
            await held.stop()
            for s in served:
                await s.avito.close()
            await images.close()
            await store.close()

    app = FastAPI(
        redirect_slashes=False,
        title="Avito messenger gateway (MCP REST API Server)",
        version=__version__,
        lifespan=lifespan,
        description="Avito webhooks -> normalized messages -> n8n; n8n -> sends to Avito chats.",
    )
    install_error_handlers(app)

    async def webhook_too_large(path: str, size: int) -> bool:
        """A receiver path (the open plain one, or an account's secret one): refused on record, Avito gets 200."""
        deployment: Deployment = app.state.deployment
        if path == RECEIVER_PATH:
            if not any(a.webhook_auth.plain_path_open() for a in deployment.accounts):
                return False
            account = None
        elif path.startswith(RECEIVER_PATH + "/") and (owner := deployment.by_secret(path[len(RECEIVER_PATH) + 1:])):
            account = owner.account.user_id
        else:
            return False
        try:
            await deployment.default.store.record_rejected(f"body too large: {size} bytes", "", clock.now(), account)
        except StorageError:
            pass  # Avito still gets its 200; /health shows the failed write
        return True

    app.add_middleware(BodyLimitMiddleware, limit=settings.max_body_bytes, image_limit=settings.image_url_max_bytes,
                       on_webhook_too_large=webhook_too_large)
    app.include_router(health.router)
    app.include_router(chats.router)
    app.include_router(send.router)
    app.include_router(webhooks.router)
    app.include_router(webhooks.receiver)
    _document_errors_as_served(app)
    return app


def _document_errors_as_served(app: FastAPI) -> None:
    """FastAPI documents a 422 validation body on every route; the gateway answers 400 in its own shape."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            for item in schema.get("paths", {}).values():
                for op in item.values():
                    answer = (op.get("responses") or {}).get("422", {})
                    ref = answer.get("content", {}).get("application/json", {}).get("schema", {}).get("$ref", "")
                    if ref.endswith("/HTTPValidationError"):
                        del op["responses"]["422"]
            for name in ("HTTPValidationError", "ValidationError"):
                schema.get("components", {}).get("schemas", {}).pop(name, None)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
