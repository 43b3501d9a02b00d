"""The fake n8n's flow control (``/_sim/flows/...``): config, appeals, history, operator answers, waits.

This is the boundary the tests and the demo use to watch the CRM side; with
a real n8n behind the n8n URL, the same questions are answered from its
database instead.
"""

from __future__ import annotations

import asyncio
from typing import Any

import anyio
import httpx
from fastapi import APIRouter, Body, HTTPException, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from avito_harness.fakes.n8n.upstream import RealFlows
from avito_harness.fakes.n8n.workflows import Workflows

__all__ = ["router"]

router = APIRouter(prefix="/_sim/flows", tags=["flows"])


def _flows(request: Request) -> Workflows | RealFlows:
    flows: Workflows | RealFlows = request.app.state.flows
    return flows


def _config(flows: Workflows | RealFlows) -> dict[str, Any]:
    """The settings, and which engine runs the workflows: ``python`` (light, virtual clock) or ``n8n`` (real)."""
    return {**flows.config.to_dict(), "engine": "n8n" if isinstance(flows, RealFlows) else "python"}


class OperatorAnswer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(min_length=1, max_length=1000)


@router.get("/config")
async def get_config(request: Request) -> dict[str, Any]:
    return _config(_flows(request))


@router.patch("/config")
async def patch_config(request: Request, body: dict[str, Any] = Body(...)) -> dict[str, Any]:
    try:
        flows = _flows(request)
        await anyio.to_thread.run_sync(flows.configure, body)
        return _config(flows)
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


@router.get("/executions")
async def executions(request: Request) -> dict[str, Any]:
    """The real n8n's failed executions in this scenario (none with the Python flows: they have no executions)."""
    flows = _flows(request)
    if not isinstance(flows, RealFlows):
        return {"failed": []}
    failed = await anyio.to_thread.run_sync(flows.log.failed_executions)
    return {"failed": [e.to_dict() | {"summary": e.describe()} for e in failed]}


@router.post("/settle")
async def settle(request: Request, timeout: float = Query(30.0, ge=0, le=120), batches: bool = True) -> dict[str, Any]:
    """Real n8n: wait (real time, bounded) until no execution runs and (``batches``) no batch window is open."""
    flows = _flows(request)
    if isinstance(flows, RealFlows) and not await anyio.to_thread.run_sync(lambda: flows.idle(timeout, batches=batches)):
        raise HTTPException(408, f"n8n was still busy after {timeout:g} s (an execution or a batch window)")
    return {"ok": True}


@router.api_route("/gateway/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
async def gateway_relay(request: Request, path: str) -> Response:
    """A fixed URL for the scenario's gateway (its port changes per scenario): what a user's workflows call where
    they name their production gateway's host (the ``urls`` of the workflow mapping file)."""
    target = _flows(request).config.gateway_url
    if not target:
        raise HTTPException(503, "no gateway is attached to the harness yet")
    headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")}
    async with httpx.AsyncClient(timeout=60) as client:
        answer = await client.request(request.method, f"{target.rstrip('/')}/{path}", params=request.query_params,
                                      content=await request.body(), headers=headers)
    return Response(answer.content, status_code=answer.status_code,
                    media_type=answer.headers.get("content-type", "application/json"))

