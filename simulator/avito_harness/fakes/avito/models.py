"""The fake Avito's data: accounts, items, customers, chats, messages, and request bodies."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from avito_harness.fakes.avito.ratelimit import RateLimits

__all__ = [
    "Account",
    "BlacklistBody",
    "AccountSettings",
    "Chat",
    "Customer",
    "DeliveryPolicy",
    "Item",
    "Message",
    "SendImageBody",
    "SendTextBody",
    "Subscription",
    "WebhookBody",
    "rfc3339",
]

MESSAGE_TYPES = ("text", "image", "link", "item", "location", "call", "deleted", "voice", "system")
ChatType = Literal["u2i", "u2u", "a2u"]


def rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(int(ts), tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Account:
    user_id: int
    name: str
    client_id: str
    client_secret: str
    email: str = "seller@example.com"
    phone: str = "79990000000"
    redirect_uri: str = "http://127.0.0.1/oauth/callback"

    @property
    def profile_url(self) -> str:
        return f"https://www.avito.ru/user/sim{self.user_id:x}/profile"

    def to_self(self) -> dict[str, Any]:
        """``GET /core/v1/accounts/self``."""
        return {
            "id": self.user_id,
            "name": self.name,
            "email": self.email,
            "phone": self.phone,
            "phones": [self.phone],
            "profile_url": self.profile_url,
        }


@dataclass
class DeliveryPolicy:
    """How webhook delivery misbehaves (all off: one prompt attempt per event, like Avito)."""

    retries: int = 0
    retry_backoff: float = 5.0
    duplicates: int = 1
    concurrent_duplicates: bool = False
    jitter: float = 0.0
    echo_before_response: bool = False
    signature: bool = True

    def __post_init__(self) -> None:
        if self.retries < 0 or self.duplicates < 1 or self.retry_backoff < 0 or self.jitter < 0:
            raise ValueError("retries >= 0, duplicates >= 1, retry_backoff >= 0, jitter >= 0")


@dataclass
class AccountSettings:
    """Per-account switches for the places where sources disagree, plus limits and delivery."""

    auth_error_status: Literal[401, 403] = 401
    messages_envelope: Literal["object", "array"] = "object"
    delivery: DeliveryPolicy = field(default_factory=DeliveryPolicy)
    rate_limits: RateLimits = field(default_factory=RateLimits)


@dataclass(frozen=True)
class Item:
    """Never changed once made (a chat page renders each of its items: what is derived is kept)."""

    id: int
    title: str
    price: int
    city: str = "Москва"
    status_id: int = 10
    image_count: int = 3

    @cached_property
    def url(self) -> str:
        return f"https://www.avito.ru/moskva/zapchasti_i_aksessuary/item_{self.id}"

    @cached_property
    def price_string(self) -> str:
        return f"{self.price:,}".replace(",", "\u00a0") + "\u00a0₽"


@dataclass(frozen=True)
class Customer:
    id: int
    name: str


@dataclass(slots=True)
class Message:
    id: str
    chat_id: str
    author_id: int
    created: int
    type: str
    content: dict[str, Any]
    is_read: bool = False
    read: int | None = None
    quote: dict[str, Any] | None = None


@dataclass
class Chat:
    id: str
    chat_type: ChatType
    customer_id: int
    item_id: int | None
    created: int
    updated: int
    messages: list[Message] = field(default_factory=list)
    activity: int = 0  # orders chats whose ``updated`` second is the same


@dataclass
class Subscription:
    url: str
    version: str = "3"
    secret: str | None = None


class SendTextMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    text: str = Field(min_length=1, max_length=1000)


class SendTextBody(BaseModel):
    """``postSendMessage`` body: ``{"type": "text", "message": {"text": ...}}``."""

    model_config = ConfigDict(extra="allow")
    type: Literal["text"]
    message: SendTextMessage


class SendImageBody(BaseModel):
    model_config = ConfigDict(extra="allow")
    image_id: str = Field(min_length=1)


class BlacklistContext(BaseModel):
    """May be omitted, but an explicit null is refused like any other wrong type."""

    model_config = ConfigDict(extra="allow", strict=True)
    item_id: int = Field(default=None)  # type: ignore[assignment]
    reason_id: Literal[1, 2, 3, 4] = Field(default=None, description="1 spam, 2 fraud, 3 insults, 4 other")  # type: ignore[arg-type]


class BlacklistUser(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)
    user_id: int
    context: BlacklistContext = Field(default=None)  # type: ignore[assignment]


class BlacklistBody(BaseModel):
    """``postBlacklistV2`` body."""

    model_config = ConfigDict(extra="allow")
    users: list[BlacklistUser] = Field(min_length=1)


class WebhookBody(BaseModel):
    """Subscribe/unsubscribe body. ``secret`` is not in Avito's schema; some clients send it."""

    model_config = ConfigDict(extra="allow")
    url: str = Field(min_length=1, max_length=2048)
    secret: str | None = None
