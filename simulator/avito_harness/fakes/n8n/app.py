"""The fake n8n: webhook trigger endpoints that record what arrives, plus control.

Answers like n8n's Webhook node in "respond immediately" mode
(``{"message": "Workflow was started"}``) and like n8n for an unknown path
(404 with n8n's ``code``/``message``/``hint`` body). Honours the shared fault
rules, so a test can make "n8n" fail, hang or drop the connection.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx
from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from avito_harness.fakes.clock import Clock, SystemClock
from avito_harness.fakes.control import ControlHooks, control_router
from avito_harness.fakes.faults import FaultMiddleware, FaultSet
from avito_harness.fakes.journal import Journal, JournalMiddleware, mask_secrets
from avito_harness.fakes.jsonsafe import loads_viewable
from avito_harness.fakes.n8n import control as flow_control
from avito_harness.fakes.n8n.crm import CrmStore
from avito_harness.fakes.n8n.flows.bat_in import contract_errors, extra_fields
from avito_harness.fakes.n8n.flows.config import FlowConfig
from avito_harness.fakes.n8n.state import N8nState
from avito_harness.fakes.n8n.upstream import RealFlows
from avito_harness.fakes.n8n.workflows import Workflows
from avito_harness.fakes.scenario import apply_common, section
from avito_harness.fakes.settings import SettingsError, SimSettings

__all__ = ["create_app", "n8n_error_body"]

HINT = (
    "Click the 'Execute workflow' button on the canvas, then try again. "
    "(In test mode, the webhook only works for one call after you click this button)"
)


def n8n_error_body(status: int) -> dict[str, Any]:
    messages = {500: "Error in workflow", 404: "Not found", 503: "Service unavailable"}
    return {"code": status, "message": messages.get(status, "Error")}


class NewPath(BaseModel):
    path: str


def _crm(settings: SimSettings, crm_db: str | None) -> CrmStore:
    path = crm_db or settings.crm_db
    return CrmStore(path) if path else CrmStore.temporary()


def _flows(settings: SimSettings, config: FlowConfig, clock: Clock, crm_db: str | None) -> Workflows | RealFlows:
    """The Python flows, or (``SIM_N8N_UPSTREAM`` + ``SIM_CRM_URL``) a real n8n's, read from its Postgres."""
    if not settings.n8n_upstream:  # unset, or empty (the compose file's default)
        return Workflows(config, clock, _crm(settings, crm_db))
    if not settings.crm_url:
        raise SettingsError("SIM_N8N_UPSTREAM needs SIM_CRM_URL: the Postgres the real workflows write")
    from avito_harness.real.crm import PostgresCrm
    from avito_harness.real.n8n.executions import ApiExecutions

    executions = ApiExecutions(settings.n8n_upstream, settings.n8n_api_key) if settings.n8n_api_key else None
    return RealFlows(config, PostgresCrm(settings.crm_url), settings.n8n_upstream, executions, clock.now)


def create_app(settings: SimSettings | None = None, *, clock: Clock | None = None, crm_db: str | None = None) -> FastAPI:
    """The fake n8n; ``crm_db`` (or ``SIM_CRM_DB``) is the CRM's SQLite file, ``:memory:`` for unit tests."""
    settings = settings or SimSettings()
    clock = clock or SystemClock()
    state = N8nState(settings.n8n_paths)
    faults = FaultSet("n8n", seed=settings.seed)
    journal = Journal("n8n")
    config = FlowConfig(mode=settings.n8n_mode, batch_window=settings.batch_window, gateway_url=settings.gateway_url,
                        gateway_api_key=settings.gateway_api_key, stt_url=settings.stt_url,
                        stt_api_key=settings.stt_api_key)
    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        app.state.flows.close()

    app = FastAPI(title="Fake n8n (avito-harness)", docs_url="/_sim/docs", openapi_url="/_sim/openapi.json",
                  lifespan=lifespan)
    app.state.n8n = state
    app.state.clock = clock
    app.state.flows = _flows(settings, config, clock, crm_db)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"code": exc.status_code, "message": str(exc.detail)}, status_code=exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        return JSONResponse({"code": 400, "message": problems}, status_code=400)

    async def _trigger(request: Request, path: str, test_mode: bool) -> Response:
        path = path.strip("/")
        if path not in state.paths:
            return JSONResponse(
                {"code": 404, "message": f'The requested webhook "{request.method} {path}" is not registered.',
                 "hint": HINT},
                status_code=404,
            )
        raw = await request.body()
        ctype = request.headers.get("content-type", "")
        body: Any = raw.decode("utf-8", errors="replace")
        if "json" in ctype and raw:
            try:
                body = loads_viewable(raw.decode("utf-8", errors="replace"))
            except ValueError:
                return JSONResponse({"code": 422, "message": "Failed to parse request body as JSON"}, status_code=422)
        headers = mask_secrets({k.lower(): v for k, v in request.headers.items()})
        errors = contract_errors(body) if path == "avito" else None
        extras = extra_fields(body) if path == "avito" else None
        state.record(path, clock.now(), headers, body, test_mode, errors, extras)
        flows = app.state.flows
        if isinstance(flows, RealFlows):
            return await _forward(flows, f"{'webhook-test' if test_mode else 'webhook'}/{path}", raw, ctype)
        if flows.config.mode == "flows" and path == "avito":
            flows.submit(body)
        return JSONResponse({"message": "Workflow was started"})

    async def _forward(flows: RealFlows, path: str, raw: bytes, ctype: str) -> Response:
        try:
            answer = await anyio.to_thread.run_sync(flows.forward, path, raw, ctype)
        except httpx.HTTPError as exc:
            return JSONResponse({"code": 503, "message": f"n8n at {flows.upstream} unreachable: {type(exc).__name__}"},
                                status_code=503)
        return Response(answer.content, status_code=answer.status_code,
                        media_type=answer.headers.get("content-type", "application/json"))

    @app.post("/webhook/{path:path}")
    async def webhook(request: Request, path: str) -> Response:
        return await _trigger(request, path, False)

    @app.post("/webhook-test/{path:path}")
    async def webhook_test(request: Request, path: str) -> Response:
        return await _trigger(request, path, True)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/_sim/received")
    async def received(path: str | None = None, since: int = 0) -> dict[str, Any]:
        return {"received": [r.to_dict() for r in state.received(path, since)]}

    @app.get("/_sim/received/invalid")
    async def invalid() -> dict[str, Any]:
        """Messages at /webhook/avito that break contracts/normalized-message.schema.json."""
        return {"invalid": [r.to_dict() for r in state.invalid()]}

    @app.get("/_sim/received/wait")
    async def wait(
        count: int = Query(1, ge=1),
        timeout: float = Query(5.0, ge=0, le=60),
        path: str | None = None,
        since: int = 0,
    ) -> JSONResponse:
        found = await asyncio.to_thread(state.wait_for, count, timeout, path, since)
        if len(found) < count:
            raise HTTPException(408, f"only {len(found)} of {count} webhook call(s) arrived within {timeout:g} s")
        return JSONResponse({"received": [r.to_dict() for r in found]})

    @app.delete("/_sim/received")
    async def clear() -> dict[str, Any]:
        state.clear()
        return {"ok": True}

    @app.api_route("/_recorder/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
    async def recorder(request: Request, path: str) -> dict[str, Any]:
        """The shop's other services (``recorder`` in the workflow mapping file): every call answered 200 and kept
        in the journal, so workflows that notify them run on, and nothing leaves this machine."""
        await request.body()
        return {"ok": True, "recorded": f"{request.method} /{path}"}

    @app.post("/_sim/webhooks", status_code=201)
    async def register(body: NewPath) -> dict[str, Any]:
        state.register(body.path)
        return {"paths": sorted(state.paths)}

    def reset(seed: int | None) -> None:
        state.reset()
        app.state.flows.reset()
        faults.reset(seed if seed is not None else settings.seed)
        journal.clear()

    def export() -> dict[str, Any]:
        rules = [{k: v for k, v in r.to_dict().items() if k not in ("seen", "fired", "id")} for r in faults.rules()]
        return {"n8n": {"faults": rules, "paths": sorted(state.paths), "flows": app.state.flows.config.to_dict()}}

    def load(doc: dict[str, Any]) -> None:
        apply_common(doc, clock, reset)
        data = section(doc, "n8n")
        for path in data.get("paths", []):
            state.register(path)
        for rule in data.get("faults", []):
            faults.add_dict(rule)
        if data.get("flows"):
            secrets = ("gateway_api_key", "stt_api_key")
            app.state.flows.configure({k: v for k, v in data["flows"].items() if not (k in secrets and v == "***")})

    hooks = ControlHooks(service="n8n", clock=clock, faults=faults, journal=journal, reset=reset, export=export, load=load)
    app.state.control = hooks
    app.include_router(control_router(hooks))
    app.include_router(flow_control.router)
    app.add_middleware(FaultMiddleware, faults=faults, now=clock.now, account_of=lambda _: None, error_body=n8n_error_body)
    app.add_middleware(JournalMiddleware, journal=journal, now=clock.now, account_of=lambda _: None)
    return app
