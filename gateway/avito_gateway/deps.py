"""Request dependencies: the deployment on app.state, the account an API key acts for.

:class:`Deployment` holds what this process serves: the shared store, inbound and forwarder, and one
:class:`Services` per Avito account (its token, rate limit, sends, keys, webhook secret). A request with
an API key sees only its own account's :class:`Services`; routes never reach another account's.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field

from fastapi import Header, Request

from avito_gateway.accounts import Account
from avito_gateway.avito_client import AvitoClient
from avito_gateway.clock import Clock
from avito_gateway.echoes import EchoBook
from avito_gateway.errors import UnauthorizedError
from avito_gateway.idempotency import IdempotencyKeys
from avito_gateway.images import ImageFetcher
from avito_gateway.inbound import Inbound
from avito_gateway.outbox import Forwarder
from avito_gateway.ratelimit import Limiter
from avito_gateway.sending import Sender
from avito_gateway.settings import GatewaySettings
from avito_gateway.store import Store
from avito_gateway.webhook_auth import WebhookAuth

__all__ = ["Deployment", "Services", "deployment", "require_api_key", "services"]


@dataclass
class Services:
    """One account's view of the gateway (what a route may use)."""

    settings: GatewaySettings
    clock: Clock
    store: Store
    avito: AvitoClient
    limiter: Limiter
    echoes: EchoBook
    keys: IdempotencyKeys
    sender: Sender
    images: ImageFetcher
    inbound: Inbound
    forwarder: Forwarder
    webhook_auth: WebhookAuth
    account: Account
    #: The Avito user ids whose stored messages this account may list (None: all, the single-account gateway).
    scope: list[int] | None = None


@dataclass
class Deployment:
    accounts: list[Services]
    _by_user: dict[int, Services] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.reindex()

    def reindex(self) -> None:
        """After ``accounts`` changed (the app fills it in while starting)."""
        self._by_user = {s.account.user_id: s for s in self.accounts if s.account.user_id is not None}

    @property
    def default(self) -> Services:
        return self.accounts[0]

    @property
    def single(self) -> bool:
        return len(self.accounts) == 1

    def by_api_key(self, key: str) -> Services | None:
        """Every key is compared (constant time each), so timing does not tell which account nearly matched."""
        found = None
        for s in self.accounts:
            for expected in s.account.api_keys:
                if hmac.compare_digest(key.encode(), expected.encode()) and found is None:
                    found = s
        return found

    def by_user_id(self, user_id: int) -> Services | None:
        if self.single and self.default.account.user_id is None:
            return self.default  # the drop-in gateway that learns its user id from Avito serves whatever comes
        return self._by_user.get(user_id)

    def by_secret(self, candidate: str) -> Services | None:
        found = None
        for s in self.accounts:
            if s.webhook_auth.accepts(candidate) and found is None:
                found = s
        return found


def deployment(request: Request) -> Deployment:
    found: Deployment = request.app.state.deployment
    return found


async def services(request: Request) -> Services:
    """The account the request's API key acts for; without a key (health, info) the first account.

    ``async`` though it awaits nothing: FastAPI runs a plain ``def`` dependency in its thread pool, a hand-off
    to another thread and back on every request (a fifth of the gateway's CPU per send on the bench)."""
    chosen = getattr(request.state, "account_services", None)
    if chosen is not None:
        return chosen  # type: ignore[no-any-return]
    return deployment(request).default


async def require_api_key(request: Request, x_api_key: str | None = Header(None, alias="X-API-Key")) -> None:
    """Every /api/* call: ``X-API-Key`` compared in constant time; missing or unknown -> 401."""
    if x_api_key is None:
        raise UnauthorizedError("Missing X-API-Key header")
    found = deployment(request).by_api_key(x_api_key)
    if found is None:
        raise UnauthorizedError("Invalid API key")
    request.state.account_services = found
