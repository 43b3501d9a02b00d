"""Avito's Messenger API routes (thin: parse, call :class:`AvitoState`, render).

Paths are Avito's exactly, including the trailing slash of the v3 messages
path and the POST-only webhook management calls.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response
from starlette.datastructures import UploadFile

from avito_harness.fakes.avito.backend import AvitoBackend
from avito_harness.fakes.avito.errors import (
    BadRequestError,
    ForbiddenError,
    RateLimitedError,
    UnauthorizedError,
    ValidationFailedError,
)
from avito_harness.fakes.avito.media import decodes, image_dimensions, sniff_image_type
from avito_harness.fakes.avito.models import (
    BlacklistBody,
    Message,
    SendImageBody,
    SendTextBody,
    Subscription,
    WebhookBody,
)
from avito_harness.fakes.avito.near_misses import note_near_miss, serving
from avito_harness.fakes.avito.state import AvitoState
from avito_harness.fakes.reasons import Reason

__all__ = ["router", "authorize", "chat_filters", "render_messages", "sent", "MAX_UPLOAD", "MAX_PIXELS"]

router = APIRouter()

MAX_UPLOAD = 24 * 1024 * 1024
MAX_PIXELS = 75_000_000
CHAT_TYPES = ("u2i", "u2u", "a2u")
DEFAULT_CHAT_TYPES = ("u2i",)  # a chat list without chat_types
UserId = Path(..., description="Avito account id (from /core/v1/accounts/self)")


def _backend(request: Request) -> AvitoBackend:
    backend: AvitoBackend = request.app.state.backend
    return backend


def authorize(
    backend: AvitoBackend, authorization: str | None, *, scope: str | None, path_user: str | None, operation: str,
    notes: dict[str, Any],
) -> tuple[AvitoState, dict[str, str]]:
    """The token's account, checked against the path and counted against the rate limits.

    Returns the account and the rate-limit headers its answer carries; raises Avito's 401/403/429. ``notes`` is the
    request's state: a refusal's reason goes there for the journal (Avito's answer stays Avito's).
    """
    try:
        state, _ = backend.authenticate(authorization, scope=scope)
    except (UnauthorizedError, ForbiddenError):
        notes["reason"], notes["hint"] = backend.auth_hint(authorization)
        raise
    if path_user is not None and path_user != str(state.user_id):
        raise ForbiddenError("user_id in the path is not the token's account")
    limits = state.settings.rate_limits
    if limits.per_minute is None and not limits.per_operation:  # no limit: nothing to count (and no clock to read)
        return state, {}
    decision = backend.limiter.hit(state.user_id, operation, limits, backend.clock.now())
    if decision is None:
        return state, {}
    if not decision.allowed:
        raise RateLimitedError(headers=decision.headers(limits.retry_after))
    return state, decision.headers(False)


def account(scope: str | None) -> Callable[..., Awaitable[AvitoState]]:
    """Dependency: the token's account, checked against the path and the rate limits."""

    async def dependency(
        request: Request, response: Response, authorization: str | None = Header(None)
    ) -> AvitoState:
        route = request.scope.get("route")
        path_user = request.path_params.get("user_id")
        state, headers = authorize(
            _backend(request), authorization, scope=scope,
            path_user=None if path_user is None else str(path_user),
            operation=str(getattr(route, "operation_id", None) or getattr(route, "name", "")),
            notes=request.scope.setdefault("state", {}),
        )
        response.headers.update(headers)
        return state

    return dependency


def _split(values: list[str]) -> list[str]:
    return [p.strip() for v in values for p in v.split(",") if p.strip()]


async def sent(backend: AvitoBackend, state: AvitoState, message: Message) -> dict[str, Any]:
    """The send's answer; first waits for the echo's delivery when the account asks for echo-before-response."""
    if state.settings.delivery.echo_before_response:
        await echo_delivered(backend, state, message)
    return state.render_sent(message)


async def echo_delivered(backend: AvitoBackend, state: AvitoState, message: Message) -> None:
    """Until the first attempt to deliver the message's echo (to every subscription) ended, or timed out."""
    futures = [asyncio.wrap_future(f) for f in backend.dispatcher.first_attempts(message.id)]
    if futures:
        await asyncio.wait(futures, timeout=backend.dispatcher.timeout * 2 + 1)


def chat_filters(getlist: Callable[[str], list[str]]) -> tuple[list[str], list[int]]:
    """``chat_types`` and ``item_ids`` of a chat list query (repeated or comma-separated); 400 naming a bad one."""
    empty = next((k for k in ("chat_types", "item_ids") if any(not v.strip() for v in getlist(k))), None)
    if empty:
        raise ValidationFailedError({empty: "must not be empty: leave the parameter out instead"})
    types = _split(getlist("chat_types")) or list(DEFAULT_CHAT_TYPES)
    bad = [t for t in types if t not in CHAT_TYPES]
    if bad:
        raise ValidationFailedError({"chat_types": f"unknown chat type(s) {', '.join(bad)}; use u2i, u2u, a2u"})
    try:
        return types, [int(v) for v in _split(getlist("item_ids"))]
    except ValueError:
        raise ValidationFailedError({"item_ids": "must be integers"}) from None


def render_messages(state: AvitoState, chat_id: str, limit: int, offset: int) -> Any:
    """A page of the chat's messages, in the envelope the account's settings ask for."""
    rendered = [state.render_message(m) for m in state.list_messages(chat_id, limit=limit, offset=offset)]
    if state.settings.messages_envelope == "array":
        return rendered
    total = len(state.chat(chat_id).messages)
    return {"messages": rendered, "meta": {"has_more": offset + len(rendered) < total}}


@router.get("/core/v1/accounts/self", operation_id="getUserInfoSelf")
async def accounts_self(state: AvitoState = Depends(account("user:read"))) -> dict[str, Any]:
    return state.account.to_self()


@router.get("/messenger/v2/accounts/{user_id}/chats", operation_id="getChatsV2")
async def get_chats(
    request: Request,
    user_id: int = UserId,
    limit: int = Query(100, ge=1, le=100),
    offset: int = Query(0, ge=0, le=1000),
    unread_only: bool = Query(False),
    state: AvitoState = Depends(account("messenger:read")),
) -> dict[str, Any]:
    types, item_ids = chat_filters(request.query_params.getlist)
    chats = state.list_chats(limit=limit, offset=offset, chat_types=types, unread_only=unread_only, item_ids=item_ids)
    return {"chats": state.render_chats(chats)}


@router.get("/messenger/v2/accounts/{user_id}/chats/{chat_id}", operation_id="getChatByIdV2")
async def get_chat(
    chat_id: str, user_id: int = UserId, state: AvitoState = Depends(account("messenger:read"))
) -> dict[str, Any]:
    return state.render_chat(state.chat(chat_id))


@router.get("/messenger/v3/accounts/{user_id}/chats/{chat_id}/messages/", operation_id="getMessagesV3")
async def get_messages(
    chat_id: str,
    user_id: int = UserId,
    limit: int = Query(100, ge=1, le=100),
    offset: int = Query(0, ge=0, le=1000),
    state: AvitoState = Depends(account("messenger:read")),
) -> Any:
    return render_messages(state, chat_id, limit, offset)


@router.post("/messenger/v1/accounts/{user_id}/chats/{chat_id}/messages", operation_id="postSendMessage")
async def send_message(
    request: Request,
    chat_id: str,
    body: SendTextBody,
    user_id: int = UserId,
    state: AvitoState = Depends(account("messenger:write")),
) -> dict[str, Any]:
    return await sent(_backend(request), state, state.send_text(chat_id, body.message.text))


@router.post("/messenger/v1/accounts/{user_id}/uploadImages", operation_id="uploadImages")
async def upload_images(
    request: Request, user_id: int = UserId, state: AvitoState = Depends(account("messenger:write"))
) -> dict[str, Any]:
    declared = int(request.headers.get("content-length") or 0)
    if declared > MAX_UPLOAD + 64 * 1024:
        raise ValidationFailedError({"uploadfile[]": "the image must be at most 24 MB"})
    if "multipart/form-data" not in request.headers.get("content-type", ""):
        raise ValidationFailedError({"uploadfile[]": "send multipart/form-data with one part named uploadfile[]"})
    form = await request.form(max_files=2, max_part_size=MAX_UPLOAD + 1)
    try:
        files = [f for f in form.getlist("uploadfile[]") if isinstance(f, UploadFile)]
        if len(files) != 1:
            raise ValidationFailedError({"uploadfile[]": f"exactly one file is required, got {len(files)}"})
        data = await files[0].read()
    finally:
        await form.close()
    if len(data) > MAX_UPLOAD:
        raise ValidationFailedError({"uploadfile[]": "the image must be at most 24 MB"})
    if sniff_image_type(data) is None:
        raise ValidationFailedError({"uploadfile[]": "not an image: JPEG, HEIC, GIF, BMP or PNG expected"})
    dims = image_dimensions(data)
    if dims is not None and dims[0] * dims[1] > MAX_PIXELS:
        raise ValidationFailedError({"uploadfile[]": "the image must be at most 75 megapixels"})
    if not decodes(data):
        raise ValidationFailedError({"uploadfile[]": "the image could not be decoded: truncated or corrupt"})
    image_id, sizes = state.upload_image(data)
    return {image_id: sizes}


@router.post(
    "/messenger/v1/accounts/{user_id}/chats/{chat_id}/messages/image", operation_id="postSendImageMessage"
)
async def send_image(
    request: Request,
    chat_id: str,
    body: SendImageBody,
    user_id: int = UserId,
    state: AvitoState = Depends(account("messenger:write")),
) -> dict[str, Any]:
    return await sent(_backend(request), state, state.send_image(chat_id, body.image_id))


@router.post("/messenger/v1/accounts/{user_id}/chats/{chat_id}/read", operation_id="chatRead")
async def chat_read(
    chat_id: str, user_id: int = UserId, state: AvitoState = Depends(account("messenger:read"))
) -> dict[str, Any]:
    state.mark_read(chat_id)
    return {"ok": True}


@router.post(
    "/messenger/v1/accounts/{user_id}/chats/{chat_id}/messages/{message_id}", operation_id="deleteMessage"
)
async def delete_message(
    chat_id: str,
    message_id: str,
    user_id: int = UserId,
    state: AvitoState = Depends(account("messenger:write")),
) -> dict[str, Any]:
    state.delete_message(chat_id, message_id)
    return {}


@router.get("/messenger/v1/accounts/{user_id}/getVoiceFiles", operation_id="getVoiceFiles")
async def get_voice_files(
    request: Request, user_id: int = UserId, state: AvitoState = Depends(account("messenger:read"))
) -> dict[str, Any]:
    ids = _split(request.query_params.getlist("voice_ids"))
    if not ids:
        raise ValidationFailedError({"voice_ids": "required: one or more voice ids"})
    return {"voices_urls": state.voice_urls(ids)}


@router.post("/messenger/v2/accounts/{user_id}/blacklist", operation_id="postBlacklistV2")
async def blacklist(
    body: BlacklistBody, user_id: int = UserId, state: AvitoState = Depends(account("messenger:write"))
) -> dict[str, Any]:
    state.add_to_blacklist([u.model_dump(exclude_none=True) for u in body.users])
    return {}


@router.post("/messenger/v3/webhook", operation_id="postWebhookV3")
async def subscribe(
    request: Request, body: WebhookBody, state: AvitoState = Depends(account("messenger:read"))
) -> dict[str, Any]:
    backend = _backend(request)
    backend.dispatcher.check_url(body.url)
    try:
        await anyio.to_thread.run_sync(backend.dispatcher.probe, body.url)
    except BadRequestError as exc:
        if exc.reason != Reason.PROBE_REFUSED or not serving(backend.settings):
            raise
        note_near_miss(request.scope.setdefault("state", {}), Reason.PROBE_REFUSED, exc.message)
    with state.lock:
        state.subscriptions = [s for s in state.subscriptions if s.url != body.url]
        state.subscriptions.append(Subscription(url=body.url, version="3", secret=body.secret))
    return {"ok": True}


@router.post("/messenger/v1/webhook/unsubscribe", operation_id="postWebhookUnsubscribe")
async def unsubscribe(body: WebhookBody, state: AvitoState = Depends(account("messenger:read"))) -> dict[str, Any]:
    with state.lock:
        state.subscriptions = [s for s in state.subscriptions if s.url != body.url]
    return {"ok": True}


@router.post("/messenger/v1/subscriptions", operation_id="getSubscriptions")
async def subscriptions(state: AvitoState = Depends(account("messenger:read"))) -> dict[str, Any]:
    with state.lock:
        return {"subscriptions": [{"url": s.url, "version": s.version} for s in state.subscriptions]}
