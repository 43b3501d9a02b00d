"""The control plane every fake shares, under ``/_sim/`` (never on a real path).

Reset, clock, faults, journal and scenario load/export. Each fake adds its
own control routes beside these (accounts and "the customer says" for Avito,
received messages for n8n).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio
from fastapi import APIRouter, Body, HTTPException, Query
from pydantic import BaseModel, Field

from avito_harness.fakes.clock import Clock
from avito_harness.fakes.faults import FaultSet
from avito_harness.fakes.journal import Journal

__all__ = ["ControlHooks", "control_router"]


class ControlHooks(BaseModel):
    """What a fake plugs into the shared control plane."""

    model_config = {"arbitrary_types_allowed": True}

    service: str
    clock: Clock
    faults: FaultSet
    journal: Journal
    reset: Callable[[int | None], None]
    export: Callable[[], dict[str, Any]]
    load: Callable[[dict[str, Any]], None]


#: Ten years: anything larger is a mistake, not a test (and would overflow date handling downstream).
MAX_ADVANCE = 10 * 365 * 24 * 3600.0


class AdvanceBody(BaseModel):
    seconds: float = Field(ge=0, le=MAX_ADVANCE, allow_inf_nan=False,
                           description="seconds to move forward: finite, 0 to ten years")


class FreezeBody(BaseModel):
    at: float | None = Field(None, ge=0, le=253402300799, allow_inf_nan=False, description="unix seconds")


def _bad(message: str) -> HTTPException:
    return HTTPException(status_code=400, detail=message)


def control_router(hooks: ControlHooks) -> APIRouter:
    router = APIRouter(prefix="/_sim", tags=["simulator control"])

    @router.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "service": hooks.service}

    @router.post("/reset")
    async def reset(seed: int | None = Query(None)) -> dict[str, Any]:
        """Fresh stores, faults, journal, seed and clock (back to its initial time and mode)."""
        hooks.clock.reset()
        await anyio.to_thread.run_sync(hooks.reset, seed)
        return {"ok": True}

    @router.get("/clock")
    async def clock() -> dict[str, Any]:
        return _clock_view(hooks.clock)

    @router.post("/clock/advance")
    async def advance(body: AdvanceBody) -> dict[str, Any]:
        await anyio.to_thread.run_sync(hooks.clock.advance, body.seconds)
        return _clock_view(hooks.clock)

    @router.post("/clock/freeze")
    async def freeze(body: FreezeBody | None = None) -> dict[str, Any]:
        await anyio.to_thread.run_sync(hooks.clock.freeze, body.at if body else None)
        return _clock_view(hooks.clock)

    @router.post("/clock/unfreeze")
    async def unfreeze() -> dict[str, Any]:
        hooks.clock.unfreeze()
        return _clock_view(hooks.clock)

    @router.get("/faults")
    async def faults() -> dict[str, Any]:
        return {"faults": [r.to_dict() for r in hooks.faults.rules()]}

    @router.post("/faults", status_code=201)
    async def add_fault(body: dict[str, Any] = Body(...)) -> dict[str, Any]:
        try:
            rule = hooks.faults.add_dict(body)
        except (TypeError, ValueError) as exc:
            raise HTTPException(status_code=422, detail=f"invalid fault rule: {exc}") from None
        return rule.to_dict()

    @router.get("/faults/unfired")
    async def unfired() -> dict[str, Any]:
        return {"faults": [r.to_dict() for r in hooks.faults.unfired()]}

    @router.delete("/faults")
    async def clear_faults() -> dict[str, Any]:
        hooks.faults.clear()
        return {"ok": True}

    @router.delete("/faults/{rule_id}")
    async def remove_fault(rule_id: str) -> dict[str, Any]:
        if not hooks.faults.remove(rule_id):
            raise HTTPException(status_code=404, detail=f"no fault rule {rule_id!r}")
        return {"ok": True}

    @router.get("/journal")
    async def journal(
        method: str | None = None,
        path: str | None = None,
        status: int | None = None,
        account: int | None = None,
        since: int = 0,
    ) -> dict[str, Any]:
        entries = hooks.journal.entries(method=method, path=path, status=status, account=account, since=since)
        return {"requests": [e.to_dict() for e in entries]}

    @router.delete("/journal")
    async def clear_journal() -> dict[str, Any]:
        hooks.journal.clear()
        return {"ok": True}

    @router.get("/scenario")
    async def export_scenario() -> dict[str, Any]:
        return hooks.export()

    @router.post("/scenario")
    async def load_scenario(body: dict[str, Any] = Body(...)) -> dict[str, Any]:
        try:
            hooks.load(body)
        except (TypeError, ValueError, KeyError) as exc:
            raise _bad(f"invalid scenario: {exc}") from None
        return {"ok": True}

    return router


def _clock_view(clock: Clock) -> dict[str, Any]:
    return {
        "now": clock.now(),
        "frozen": clock.frozen,
        "pending": [{"due": c.due, "name": c.name} for c in clock.pending()],
    }
