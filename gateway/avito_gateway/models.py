"""The gateway's answer bodies, as served in its OpenAPI (``contracts/gateway.openapi.yaml`` is the source)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "Ack",
    "BulkAnswer",
    "ChatsAnswer",
    "ErrorAnswer",
    "FlushAnswer",
    "HealthAnswer",
    "InboundAnswer",
    "InfoAnswer",
    "MessagesAnswer",
    "OutboxAnswer",
    "ReadAnswer",
    "RejectedAnswer",
    "ReplayAnswer",
    "SendAnswer",
    "SubscribeAnswer",
    "SubscriptionsAnswer",
    "TokenAnswer",
    "ERRORS",
]


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class ErrorAnswer(_Open):
    success: Literal[False]
    error: str
    code: str
    retryable: bool
    retry_after: int | None = None
    details: dict[str, Any] | None = None


class HealthAnswer(_Open):
    status: Literal["healthy", "degraded", "unhealthy"]
    checks: dict[str, bool]
    outbox_pending: int
    outbox_dead: int
    outbox_oldest_pending_age: float | None = None
    forward_failures_in_a_row: int | None = None
    webhook_auth: Literal["open", "secret_path"] | None = None
    store: Literal["sqlite", "postgres"] | None = None
    reason: str | None = None


class InfoAnswer(_Open):
    service: str
    version: str
    rate_limit_requests: int
    rate_limit_window: float
    max_connections: int
    avito_user_id: int | None
    avito_api_base_url: str
    n8n_configured: bool
    webhook_secret_set: bool
    webhook_auth: Literal["open", "secret_path"] | None = None
    accounts: int | None = None
    store: Literal["sqlite", "postgres"] | None = None


class TokenState(_Open):
    obtained: bool
    token_type: str
    expires_in: int
    obtained_at: float | None
    refreshes: int


class TokenAnswer(_Open):
    success: Literal[True]
    token: TokenState


class ChatsAnswer(_Open):
    success: Literal[True]
    chats: list[dict[str, Any]]


class MessagesAnswer(_Open):
    success: Literal[True]
    chat_id: str
    messages: list[dict[str, Any]]


class ReadAnswer(_Open):
    success: Literal[True]
    chat_id: str
    message: str


class SentMessage(_Open):
    id: str
    created: int
    image_id: str | None = None


class SendAnswer(_Open):
    success: Literal[True]
    chat_id: str
    message: str
    response: SentMessage
    idempotent_replay: bool | None = None


class BulkAnswer(_Open):
    success: bool
    total: int
    sent: int
    failed: int
    results: list[dict[str, Any]]


class SubscribeAnswer(_Open):
    success: Literal[True]
    url: str
    version: int
    response: dict[str, Any]


class SubscriptionsAnswer(_Open):
    success: Literal[True]
    subscriptions: list[dict[str, Any]]


class InboundItem(_Open):
    id: int
    kind: Literal["customer", "echo", "seller_reply", "system"]
    message_id: str
    chat_id: str
    author_id: int | None
    received_at: float
    type: str | None


class InboundAnswer(_Open):
    success: Literal[True]
    counts: dict[str, int]
    messages: list[InboundItem]


class RejectedAnswer(_Open):
    success: Literal[True]
    rejected: list[dict[str, Any]]


class OutboxItemAnswer(_Open):
    id: int
    chat_id: str
    status: Literal["pending", "delivered", "dead"]
    attempts: int
    next_attempt_at: float
    last_error: str | None
    created_at: float
    delivered_at: float | None
    message_id: str | None
    claimed_by: str | None = Field(None, description="the replica (REPLICA_ID) forwarding it now")
    claimed_until: float | None = Field(None, description="when that claim lapses if the replica dies")


class OutboxAnswer(_Open):
    success: Literal[True]
    items: list[OutboxItemAnswer]


class ReplayAnswer(_Open):
    success: Literal[True]
    replayed: int


class FlushAnswer(_Open):
    success: Literal[True]
    attempted: int


class Ack(_Open):
    ok: bool


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": ErrorAnswer} for code in codes}


#: Error answers per kind of route, for the served OpenAPI.
ERRORS = {
    "api": _errors(400, 401, 429),
    "avito": _errors(400, 401, 402, 403, 404, 429, 502, 504),
    "send": _errors(400, 401, 402, 403, 404, 413, 422, 429, 502, 504),
}
