"""Request dependencies: the services on app.state, the API key check."""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from fastapi import Header, Request

from gateway.avito_client import AvitoClient
from gateway.clock import Clock
from gateway.errors import UnauthorizedError
from gateway.inbound import Inbound
from gateway.messaging import Messenger
from gateway.outbox import Forwarder
from gateway.ratelimit import SlidingWindowLimiter
from gateway.settings import GatewaySettings
from gateway.store import GatewayStore
from gateway.webhook_auth import WebhookAuth

__all__ = ["Services", "require_api_key", "services"]


@dataclass
class Services:
    settings: GatewaySettings
    clock: Clock
    store: GatewayStore
    avito: AvitoClient
    limiter: SlidingWindowLimiter
    messenger: Messenger
    inbound: Inbound
    forwarder: Forwarder
    webhook_auth: WebhookAuth


def services(request: Request) -> Services:
    found: Services = request.app.state.services
    return found


async def require_api_key(request: Request, x_api_key: str | None = Header(None, alias="X-API-Key")) -> None:
    """Every /api/* call: ``X-API-Key`` compared in constant time; missing or wrong -> 401."""
    expected = services(request).settings.api_key
    if x_api_key is None:
        raise UnauthorizedError("Missing X-API-Key header")
    if not hmac.compare_digest(x_api_key.encode(), expected.encode()):
        raise UnauthorizedError("Invalid API key")
