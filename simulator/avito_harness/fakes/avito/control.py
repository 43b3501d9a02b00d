"""The fake Avito's own control routes (``/_sim/...``): accounts, chats, "the customer says".

Injecting a customer message is the core primitive of every test and demo: it
lands in the chat exactly like a real customer's message and fires webhooks.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict, replace
from typing import Any, Literal

from fastapi import APIRouter, Body, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from avito_harness.fakes.avito.backend import AvitoBackend
from avito_harness.fakes.avito.errors import ValidationFailedError
from avito_harness.fakes.avito.models import AccountSettings, DeliveryPolicy
from avito_harness.fakes.avito.ratelimit import RateLimits
from avito_harness.fakes.avito.seed import seed_demo_data, seed_volume
from avito_harness.fakes.avito.state import AvitoState
from avito_harness.fakes.names import first_name

__all__ = ["router", "account_view", "apply_account_settings", "export_settings"]

router = APIRouter(prefix="/_sim", tags=["simulator control"])


class NewAccount(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user_id: int | None = Field(None, ge=1)
    name: str | None = None
    client_id: str | None = None
    client_secret: str | None = None
    demo_data: bool = False
    settings: dict[str, Any] | None = None


class NewItem(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: str = Field(min_length=1)
    price: int = Field(ge=0)
    item_id: int | None = Field(None, ge=1)


class NewCustomer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = None
    customer_id: int | None = Field(None, ge=1)


class NewChat(BaseModel):
    model_config = ConfigDict(extra="forbid")
    customer_id: int | None = None
    customer_name: str | None = None
    item_id: int | None = None
    chat_type: Literal["u2i", "u2u", "a2u"] | None = None


class Volume(BaseModel):
    """More chats and messages for one account, to see how the fake's answers grow with its state."""

    model_config = ConfigDict(extra="forbid")
    chats: int = Field(ge=0, le=1_000_000)
    messages_per_chat: int = Field(0, ge=0, le=10_000)


class Inject(BaseModel):
    """A message typed by the customer (default), by Avito (``author: system``) or by us elsewhere."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["text", "image", "voice", "link", "item", "location", "call", "system"] = "text"
    author: Literal["customer", "system", "account"] = "customer"
    text: str | None = None
    url: str | None = None
    item_id: int | None = None
    lat: float | None = None
    lon: float | None = None
    flow_id: str | None = None
    quote_id: str | None = None
    wait: bool = True


def _backend(request: Request) -> AvitoBackend:
    backend: AvitoBackend = request.app.state.backend
    return backend


def account_view(state: AvitoState) -> dict[str, Any]:
    a = state.account
    with state.lock:
        return {
            "user_id": a.user_id,
            "name": a.name,
            "client_id": a.client_id,
            "client_secret": a.client_secret,
            "items": [{"id": i.id, "title": i.title, "price": i.price} for i in state.items.values()],
            "customers": [{"id": c.id, "name": c.name} for c in state.customers.values()],
            "chats": [
                {"id": c.id, "chat_type": c.chat_type, "customer_id": c.customer_id, "item_id": c.item_id,
                 "messages": len(c.messages)}
                for c in state.chats.values()
            ],
            "subscriptions": [{"url": s.url, "version": s.version} for s in state.subscriptions],
            "settings": export_settings(state.settings),
        }


def export_settings(settings: AccountSettings) -> dict[str, Any]:
    return {
        "auth_error_status": settings.auth_error_status,
        "messages_envelope": settings.messages_envelope,
        "delivery": asdict(settings.delivery),
        "rate_limits": settings.rate_limits.to_dict(),
    }


def apply_account_settings(state: AvitoState, data: dict[str, Any]) -> None:
    """Merge ``data`` into the account's settings; unknown keys or bad values raise ValueError."""
    known = {"auth_error_status", "messages_envelope", "delivery", "rate_limits"}
    unknown = set(data) - known
    if unknown:
        raise ValueError(f"unknown setting(s): {', '.join(sorted(unknown))}")
    current = state.settings
    status = data.get("auth_error_status", current.auth_error_status)
    if status not in (401, 403):
        raise ValueError("auth_error_status must be 401 or 403")
    envelope = data.get("messages_envelope", current.messages_envelope)
    if envelope not in ("object", "array"):
        raise ValueError("messages_envelope must be 'object' or 'array'")
    delivery = DeliveryPolicy(**{**asdict(current.delivery), **data.get("delivery", {})})
    limits = RateLimits(**{**current.rate_limits.to_dict(), **data.get("rate_limits", {})})
    with state.lock:
        state.settings = replace(
            current, auth_error_status=status, messages_envelope=envelope, delivery=delivery, rate_limits=limits
        )


@router.get("/accounts")
async def list_accounts(request: Request) -> dict[str, Any]:
    return {"accounts": [account_view(s) for s in _backend(request).accounts.values()]}


@router.post("/accounts", status_code=201)
async def create_account(request: Request, body: NewAccount | None = None) -> dict[str, Any]:
    body = body or NewAccount()
    backend = _backend(request)
    state = backend.create_account(
        body.user_id, name=body.name, client_id=body.client_id, client_secret=body.client_secret
    )
    if body.settings:
        _apply(state, body.settings)
    if body.demo_data:
        seed_demo_data(state, seed=backend.seed + state.user_id)
    return account_view(state)


def _apply(state: AvitoState, data: dict[str, Any]) -> None:
    try:
        apply_account_settings(state, data)
    except (TypeError, ValueError) as exc:
        raise ValidationFailedError({"settings": str(exc)}) from None


@router.get("/accounts/{user_id}")
async def get_account(request: Request, user_id: int) -> dict[str, Any]:
    return account_view(_backend(request).account(user_id))


@router.patch("/accounts/{user_id}/settings")
async def patch_settings(request: Request, user_id: int, body: dict[str, Any] = Body(...)) -> dict[str, Any]:
    state = _backend(request).account(user_id)
    _apply(state, body)
    return export_settings(state.settings)


@router.post("/accounts/{user_id}/items", status_code=201)
async def add_item(request: Request, user_id: int, body: NewItem) -> dict[str, Any]:
    item = _backend(request).account(user_id).add_item(body.title, body.price, item_id=body.item_id)
    return {"id": item.id, "title": item.title, "price": item.price, "url": item.url}


@router.post("/accounts/{user_id}/customers", status_code=201)
async def add_customer(request: Request, user_id: int, body: NewCustomer | None = None) -> dict[str, Any]:
    body = body or NewCustomer()
    state = _backend(request).account(user_id)
    customer = state.add_customer(body.name or _fake_name(state), customer_id=body.customer_id)
    return {"id": customer.id, "name": customer.name}


@router.post("/accounts/{user_id}/volume", status_code=201)
def add_volume(request: Request, user_id: int, body: Volume) -> dict[str, Any]:
    """Bulk chats and messages (a worker thread: a million messages take a while, the server stays up)."""
    state = _backend(request).account(user_id)
    seed_volume(state, chats=body.chats, messages_per_chat=body.messages_per_chat)
    return {"chats": len(state.chats), "messages": sum(len(c.messages) for c in list(state.chats.values()))}


def seed_recorded_chat(backend: Any, chat: dict[str, Any]) -> None:
    """A chat of a recorded incident, under its recorded id, with its customer and ad (a scenario's
    ``avito.chats``: ``{user_id, chat_id, chat_type, customer_id, customer_name, item_id}``); kept if it exists."""
    state = backend.accounts.get(int(chat["user_id"])) or backend.create_account(int(chat["user_id"]))
    if chat["chat_id"] not in state.chats:
        _recorded_chat(state, chat)
    for m in chat.get("messages") or []:  # the chat's history as recorded (answers and webhooks), ids kept
        state.restore_message(chat["chat_id"], message_id=str(m["id"]), author_id=int(m.get("author_id") or 0),
                              kind=str(m.get("type") or "text"), content=dict(m.get("content") or {}),
                              created=int(m.get("created") or 0))


def _recorded_chat(state: AvitoState, chat: dict[str, Any]) -> None:
    customer_id = int(chat.get("customer_id") or 0) or None
    if customer_id is None or customer_id not in state.customers:
        customer_id = state.add_customer(str(chat.get("customer_name") or _fake_name(state)), customer_id=customer_id).id
    item_id = int(chat.get("item_id") or 0) or None
    if chat.get("chat_type", "u2i") == "u2i" and (item_id is None or item_id not in state.items):
        item_id = state.add_item("Объявление из записи", 1000, item_id=item_id).id
    state.create_chat(customer_id, item_id=item_id, chat_type=chat.get("chat_type") or "u2i", chat_id=chat["chat_id"])


def _fake_name(state: AvitoState) -> str:
    return first_name(state.rng)


@router.post("/accounts/{user_id}/chats", status_code=201)
async def add_chat(request: Request, user_id: int, body: NewChat) -> dict[str, Any]:
    state = _backend(request).account(user_id)
    customer_id = body.customer_id
    if customer_id is None:
        customer_id = state.add_customer(body.customer_name or _fake_name(state)).id
    chat = state.create_chat(customer_id, item_id=body.item_id, chat_type=body.chat_type)
    return state.render_chat(chat)


@router.get("/accounts/{user_id}/chats/{chat_id}")
async def get_chat(request: Request, user_id: int, chat_id: str) -> dict[str, Any]:
    """The whole chat as Avito would show it, oldest message first."""
    state = _backend(request).account(user_id)
    chat = state.chat(chat_id)
    with state.lock:
        messages = [state.render_message(m) for m in chat.messages]
    return {**state.render_chat(chat), "messages": messages}


@router.post("/accounts/{user_id}/chats/{chat_id}/messages", status_code=201)
async def inject(request: Request, user_id: int, chat_id: str, body: Inject) -> dict[str, Any]:
    """The customer says something: the message lands in the chat and webhooks fire."""
    backend = _backend(request)
    state = backend.account(user_id)
    payload = body.model_dump(exclude={"type", "author", "wait"}, exclude_none=True)
    message = state.inject(chat_id, body.type, author=body.author, **payload)
    deliveries: list[dict[str, Any]] = []
    if body.wait:
        futures = [asyncio.wrap_future(f) for f in backend.dispatcher.first_attempts(message.id)]
        if futures:
            done, _ = await asyncio.wait(futures, timeout=backend.dispatcher.timeout * 2 + 1)
            deliveries = [f.result().to_dict() for f in done]
    return {"message": state.render_message(message), "chat_id": chat_id, "deliveries": deliveries}


@router.post("/accounts/{user_id}/chats/{chat_id}/customer-read")
async def customer_read(request: Request, user_id: int, chat_id: str) -> dict[str, Any]:
    _backend(request).account(user_id).customer_reads(chat_id)
    return {"ok": True}


@router.get("/accounts/{user_id}/tokens")
async def tokens(request: Request, user_id: int) -> dict[str, Any]:
    """The access tokens issued to this account (a fake's control plane: lets tests check nothing leaks them)."""
    backend = _backend(request)
    backend.account(user_id)
    return {"tokens": backend.tokens.issued(user_id)}


@router.post("/accounts/{user_id}/tokens/expire")
async def expire_tokens(request: Request, user_id: int) -> dict[str, Any]:
    backend = _backend(request)
    backend.account(user_id)
    return {"expired": backend.tokens.expire(user_id)}


@router.post("/accounts/{user_id}/oauth/code", status_code=201)
async def oauth_code(request: Request, user_id: int, scope: str | None = Query(None)) -> dict[str, Any]:
    backend = _backend(request)
    state = backend.account(user_id)
    code = backend.tokens.new_code(user_id, state.account.client_id, scope or "messenger:read,messenger:write")
    return {"code": code}


@router.get("/webhooks/deliveries")
async def deliveries(
    request: Request,
    account: int | None = None,
    message_id: str | None = None,
    wait_count: int = Query(0, ge=0),
    timeout: float = Query(5.0, ge=0, le=60),
) -> dict[str, Any]:
    """The delivery log; ``wait_count`` blocks (real time, bounded) until that many attempts exist."""
    dispatcher = _backend(request).dispatcher
    if wait_count:
        await asyncio.to_thread(dispatcher.wait_for, wait_count, timeout, account=account)
    attempts = dispatcher.attempts(account=account, message_id=message_id)
    return {"deliveries": [a.to_dict() for a in attempts]}
