"""The fake n8n's flow control (``/_sim/flows/...``): config, appeals, history, operator answers, waits.

This is the boundary the tests and the demo use to watch the CRM side; with
a real n8n behind the n8n URL, the same questions are answered from its
database instead.
"""

from __future__ import annotations

import asyncio
from typing import Any

import anyio
from fastapi import APIRouter, Body, HTTPException, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from avito_harness.n8n.workflows import Workflows

__all__ = ["router"]

router = APIRouter(prefix="/_sim/flows", tags=["flows"])


def _flows(request: Request) -> Workflows:
    flows: Workflows = request.app.state.flows
    return flows


class OperatorAnswer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(min_length=1, max_length=1000)


@router.get("/config")
async def get_config(request: Request) -> dict[str, Any]:
    return _flows(request).config.to_dict()


@router.patch("/config")
async def patch_config(request: Request, body: dict[str, Any] = Body(...)) -> dict[str, Any]:
    try:
        return _flows(request).configure(body).to_dict()
    except (TypeError, ValueError) as exc:
        raise HTTPException(400, f"invalid flow settings: {exc}") from None


@router.post("/inject", status_code=202)
async def inject(request: Request, body: dict[str, Any] = Body(...)) -> dict[str, Any]:
    """A normalized message from any channel straight into the inbound workflow (as Telegram's trigger would)."""
    await asyncio.wrap_future(_flows(request).submit(body))
    return {"ok": True}


@router.get("/appeals")
async def appeals(request: Request) -> dict[str, Any]:
    return {"appeals": _flows(request).crm.appeals()}


@router.get("/appeals/{appeal_id}")
async def appeal(request: Request, appeal_id: int) -> dict[str, Any]:
    crm = _flows(request).crm
    found = crm.appeal(appeal_id)
    if found is None:
        raise HTTPException(404, f"no appeal {appeal_id}")
    return {**found, "batches": crm.batches(appeal_id), "history": crm.history(appeal_id)}


@router.post("/appeals/{appeal_id}/answer")
async def answer(request: Request, appeal_id: int, body: OperatorAnswer) -> dict[str, Any]:
    try:
        return await anyio.to_thread.run_sync(_flows(request).operator_answer, appeal_id, body.text)
    except KeyError:
        raise HTTPException(404, f"no appeal {appeal_id}") from None


@router.get("/history")
async def history(request: Request) -> dict[str, Any]:
    return {"messages_history": _flows(request).crm.history()}


@router.get("/rejected")
async def rejected(request: Request) -> dict[str, Any]:
    return {"rejected": _flows(request).crm.rejected()}


@router.get("/stubs")
async def stubs(request: Request) -> dict[str, Any]:
    """What the Telegram / VK / WhatsApp / MAX outbound stubs were asked to send."""
    return {"sent": list(_flows(request).stubs)}


@router.get("/events")
async def events(request: Request, kind: str | None = None, since: int = 0) -> dict[str, Any]:
    return {"events": [e.to_dict() for e in _flows(request).log.events(kind, since)]}


@router.get("/wait")
async def wait(request: Request, kind: str = Query(..., min_length=1), count: int = Query(1, ge=1),
               timeout: float = Query(5.0, ge=0, le=60), since: int = 0) -> dict[str, Any]:
    """Block (real time, bounded) until ``count`` events of ``kind`` happened; 408 with what there is otherwise."""
    found = await asyncio.to_thread(_flows(request).log.wait_for, kind, count, timeout, since)
    if len(found) < count:
        raise HTTPException(408, f"only {len(found)} of {count} '{kind}' event(s) within {timeout:g} s")
    return {"events": [e.to_dict() for e in found]}
