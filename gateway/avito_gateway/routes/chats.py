"""/api/chats, /api/chats/{id}/messages, /api/chats/{id}/read: Avito's chats v2, messages v3, read v1."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query

from avito_gateway.deps import Services, require_api_key, services
from avito_gateway.models import ERRORS, ChatsAnswer, MessagesAnswer, ReadAnswer
from avito_gateway.ratelimit import take_slot

__all__ = ["router"]

router = APIRouter(prefix="/api/chats", dependencies=[Depends(require_api_key)], tags=["chats"])


@router.get("", response_model=ChatsAnswer, responses=ERRORS["avito"])
async def list_chats(
    limit: int = Query(100, ge=1, le=100),
    offset: int = Query(0, ge=0, le=1000),
    unread_only: bool = False,
    chat_types: str | None = Query(None, pattern=r"^(u2i|u2u|a2u)(,(u2i|u2u|a2u))*$"),
    item_ids: str | None = Query(None, pattern=r"^[0-9]+(,[0-9]+)*$"),
    s: Services = Depends(services),
) -> dict[str, Any]:
    await take_slot(s.limiter)
    params: dict[str, Any] = {"limit": limit, "offset": offset, "unread_only": str(unread_only).lower()}
    if chat_types:
        params["chat_types"] = chat_types
    if item_ids:
        params["item_ids"] = item_ids
    return {"success": True, "chats": await s.avito.list_chats(params)}


@router.get("/{chat_id}/messages", response_model=MessagesAnswer, responses=ERRORS["avito"])
async def chat_messages(
    chat_id: str,
    limit: int = Query(100, ge=1, le=100),
    offset: int = Query(0, ge=0, le=1000),
    s: Services = Depends(services),
) -> dict[str, Any]:
    await take_slot(s.limiter)
    messages = await s.avito.list_messages(chat_id, limit=limit, offset=offset)
    return {"success": True, "chat_id": chat_id, "messages": messages}


@router.post("/{chat_id}/read", response_model=ReadAnswer, responses=ERRORS["avito"])
async def mark_read(chat_id: str, s: Services = Depends(services)) -> dict[str, Any]:
    await take_slot(s.limiter)
    await s.avito.mark_read(chat_id)
    return {"success": True, "chat_id": chat_id, "message": "Chat marked as read"}
