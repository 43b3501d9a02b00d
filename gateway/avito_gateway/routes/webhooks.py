"""Webhook subscription, the Avito webhook receiver, and the inbound / outbox API."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from avito_gateway.deps import Services, deployment, require_api_key, services
from avito_gateway.errors import InvalidRequestError, NotFoundError
from avito_gateway.models import (
    ERRORS,
    Ack,
    ErrorAnswer,
    FlushAnswer,
    InboundAnswer,
    OutboxAnswer,
    RejectedAnswer,
    ReplayAnswer,
    SubscribeAnswer,
    SubscriptionsAnswer,
)
from avito_gateway.normalize import FORWARDED
from avito_gateway.ratelimit import take_slot

__all__ = ["router", "receiver"]

router = APIRouter(prefix="/api", dependencies=[Depends(require_api_key)])
receiver = APIRouter(tags=["avito webhook"])


class Subscribe(BaseModel):
    model_config = ConfigDict(extra="ignore")
    url: str | None = Field(None, min_length=1, max_length=2048)
    version: int | str | None = None


@router.post("/webhook/subscribe", tags=["webhook"], response_model=SubscribeAnswer, responses=ERRORS["avito"])
async def subscribe(body: Subscribe | None = None, s: Services = Depends(services)) -> dict[str, Any]:
    """Subscribe a URL (default PUBLIC_WEBHOOK_URL) with Avito's v3 subscription; Avito probes it first.

    A URL of this gateway's receiver (``.../webhook/avito``) is subscribed with the secret path segment; the
    answer shows it masked."""
    url = (body.url if body else None) or s.settings.public_webhook_url
    if not url:
        raise InvalidRequestError("url is required (or set PUBLIC_WEBHOOK_URL)", details={"fields": {"url": "required"}})
    await take_slot(s.limiter)
    target = s.webhook_auth.subscription_url(url)
    answer = await s.avito.subscribe(target)
    await s.webhook_auth.subscribed(target)
    return {"success": True, "url": s.webhook_auth.mask(target), "version": 3, "response": answer}


@router.get("/webhook/subscriptions", tags=["webhook"], response_model=SubscriptionsAnswer, responses=ERRORS["avito"])
async def subscriptions(s: Services = Depends(services)) -> dict[str, Any]:
    await take_slot(s.limiter)
    found = await s.avito.subscriptions()
    masked = [{**sub, "url": s.webhook_auth.mask(str(sub["url"]))} if isinstance(sub, dict) and "url" in sub else sub
              for sub in found]
    return {"success": True, "subscriptions": masked}


@router.get("/inbound", tags=["inbound"], response_model=InboundAnswer, responses=ERRORS["api"])
async def inbound(kind: str | None = Query(None, pattern="^(customer|echo|seller_reply|system)$"),
                  limit: int = Query(100, ge=1, le=1000), s: Services = Depends(services)) -> dict[str, Any]:
    """Messages Avito delivered, newest first, with how each was classified."""
    records = await s.store.inbound(kind, limit, s.scope)
    return {"success": True, "counts": await s.store.counts(s.scope), "messages": [
        {"id": r.id, "kind": r.kind, "message_id": r.message_id, "chat_id": r.chat_id, "author_id": r.author_id,
         "received_at": r.received_at, "type": r.raw["payload"]["value"].get("type")} for r in records]}


@router.get("/inbound/rejected", tags=["inbound"], response_model=RejectedAnswer, responses=ERRORS["api"])
async def rejected(limit: int = Query(100, ge=1, le=1000), s: Services = Depends(services)) -> dict[str, Any]:
    return {"success": True, "rejected": await s.store.rejected(limit, s.scope)}


@router.get("/outbox", tags=["outbox"], response_model=OutboxAnswer, responses=ERRORS["api"])
async def outbox(status: str | None = Query(None, pattern="^(pending|delivered|dead)$"),
                 limit: int = Query(100, ge=1, le=1000), s: Services = Depends(services)) -> dict[str, Any]:
    return {"success": True, "items": [i.to_dict() for i in await s.store.outbox(status, limit, s.scope)]}


@router.post("/outbox/dead/replay", tags=["outbox"], response_model=ReplayAnswer, responses=ERRORS["api"])
async def replay_all(s: Services = Depends(services)) -> dict[str, Any]:
    count = await s.store.replay(None, s.clock.now(), s.scope)
    s.forwarder.wake.set()
    return {"success": True, "replayed": count}


@router.post("/outbox/{item_id}/replay", tags=["outbox"], response_model=ReplayAnswer,
             responses={**ERRORS["api"], 404: {"model": ErrorAnswer}})
async def replay_one(item_id: int, s: Services = Depends(services)) -> dict[str, Any]:
    if not await s.store.replay(item_id, s.clock.now(), s.scope):  # ids past SQL's range are simply not there
        raise NotFoundError(f"no dead letter {item_id}")
    s.forwarder.wake.set()
    return {"success": True, "replayed": 1}


@router.post("/outbox/flush", tags=["outbox"], response_model=FlushAnswer, responses=ERRORS["api"])
async def flush(s: Services = Depends(services)) -> dict[str, Any]:
    """Forward everything due now and return (no waiting for the background worker)."""
    return {"success": True, "attempted": await s.forwarder.run_once()}


async def _receive(request: Request, s: Services, via: Services | None) -> JSONResponse:
    outcome = await s.inbound.receive(await request.body(), via)
    if outcome in FORWARDED:
        s.forwarder.wake.set()
    return JSONResponse({"ok": True})


@receiver.post("/webhook/avito", response_model=Ack, responses={404: {"model": ErrorAnswer}})
async def avito_webhook(request: Request, s: Services = Depends(services)) -> JSONResponse:
    """Avito's deliveries (no API key: Avito cannot send one), routed by the payload's ``user_id``. Open only
    until the gateway subscribed itself with its secret path (or as WEBHOOK_PLAIN_PATH says); then 404, like
    any unknown path (with several accounts: 404 once no account takes plain deliveries)."""
    accounts = deployment(request).accounts
    for a in accounts:
        await a.webhook_auth.refresh()
    if not any(a.webhook_auth.plain_path_open() for a in accounts):
        raise NotFoundError("Not Found")
    return await _receive(request, s, None)


@receiver.post("/webhook/avito/{secret}", include_in_schema=False)
async def avito_webhook_with_secret(secret: str, request: Request) -> JSONResponse:
    """An account's secret path: the webhook must be that account's."""
    owner = deployment(request).by_secret(secret)
    if owner is None:
        raise NotFoundError("Not Found")
    return await _receive(request, owner, owner)
