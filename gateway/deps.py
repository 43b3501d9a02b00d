"""Request dependencies: the services on app.state, the API key check."""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from fastapi import Header, Request

from avito_gateway.avito_client import AvitoClient
from avito_gateway.clock import Clock
from avito_gateway.errors import UnauthorizedError
from avito_gateway.inbound import Inbound
from avito_gateway.messaging import Messenger
from avito_gateway.outbox import Forwarder
from avito_gateway.ratelimit import SlidingWindowLimiter
from avito_gateway.settings import GatewaySettings
from avito_gateway.store import GatewayStore
from avito_gateway.webhook_auth import WebhookAuth

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
