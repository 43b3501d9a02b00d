"""/health, /info (no API key) and /api/token."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from avito_gateway import __version__
from avito_gateway.deps import Services, deployment, require_api_key, services
from avito_gateway.errors import GatewayError
from avito_gateway.models import ERRORS, HealthAnswer, InfoAnswer, TokenAnswer
from avito_gateway.ratelimit import take_slot

__all__ = ["router"]

router = APIRouter()


@router.get("/health", tags=["monitoring"], response_model=HealthAnswer, responses={503: {"model": HealthAnswer}})
async def health(request: Request, s: Services = Depends(services)) -> JSONResponse:
    """``healthy`` (200) only when the gateway can work and is keeping up; else 503 with the reason.

    ``unhealthy``: storage cannot be written (a failed write, or less free disk than STORAGE_MIN_FREE_BYTES)
    or no Avito token can be had. ``degraded``: messages are not reaching n8n (the oldest waiting one is older
    than HEALTH_OUTBOX_MAX_AGE, or HEALTH_FORWARD_FAILURES forwards in a row failed)."""
    now = s.clock.now()
    free = _free_bytes(s.settings.data_dir)
    checks: dict[str, Any] = {"storage": await s.store.writable(now) and free >= s.settings.storage_min_free_bytes}
    problems: list[str] = []
    if not checks["storage"]:
        problems.append(f"storage is not writable: {s.store.write_error}" if s.store.write_error
                        else f"storage is not writable (free disk {free} bytes)")
    accounts = deployment(request).accounts
    checks["avito_token"] = True
    for account in accounts:
        try:
            await account.avito.token()
        except GatewayError as exc:
            checks["avito_token"] = False
            whose = "" if len(accounts) == 1 else f" for account {account.account.name}"
            problems.append(f"cannot obtain an Avito token{whose}: {exc.message}")
    checks["n8n_configured"] = bool(s.settings.n8n_webhook_url)
    counts = await s.store.counts()
    oldest = await s.store.oldest_pending()
    age = max(0.0, now - oldest) if oldest is not None else 0.0
    failures = s.forwarder.failures_in_a_row
    lagging = []
    if age > s.settings.health_outbox_max_age:
        lagging.append(f"the oldest message waiting for n8n arrived {age:.0f} s ago")
    if failures >= s.settings.health_forward_failures:
        lagging.append(f"{failures} forwards to n8n failed in a row (last: {s.forwarder.last_error})")
    checks["forwarding"] = not lagging
    status = "unhealthy" if problems else ("degraded" if lagging else "healthy")
    body: dict[str, Any] = {
        "status": status, "checks": checks,
        "outbox_pending": counts.get("outbox_pending", 0), "outbox_dead": counts.get("outbox_dead", 0),
        "outbox_oldest_pending_age": round(age, 3), "forward_failures_in_a_row": failures,
        "webhook_auth": s.webhook_auth.mode, "store": s.store.engine,
    }
    if problems or lagging:
        body["reason"] = "; ".join(problems + lagging)
    return JSONResponse(body, status_code=200 if status == "healthy" else 503)


def _free_bytes(path: Path) -> int:
    try:
        return shutil.disk_usage(path).free
    except OSError:
        return 0


@router.get("/info", tags=["monitoring"], response_model=InfoAnswer)
async def info(request: Request, s: Services = Depends(services)) -> dict[str, Any]:
    st = s.settings
    return {
        "service": "avito-messenger-api",
        "version": __version__,
        "rate_limit_requests": st.rate_limit_requests,
        "rate_limit_window": int(st.rate_limit_window) if float(st.rate_limit_window).is_integer() else st.rate_limit_window,
        "max_connections": st.max_connections,
        "avito_user_id": st.avito_user_id,
        "avito_api_base_url": st.avito_api_base_url,
        "n8n_configured": bool(st.n8n_webhook_url),
        "webhook_secret_set": bool(st.webhook_secret),
        "webhook_auth": s.webhook_auth.mode,
        "accounts": len(deployment(request).accounts),
        "store": s.store.engine,
    }


@router.get("/api/token", dependencies=[Depends(require_api_key)], tags=["diagnostics"], response_model=TokenAnswer,
            responses=ERRORS["avito"])
async def token(s: Services = Depends(services)) -> dict[str, Any]:
    """Token state (obtains one if needed). Never shows any part of the token."""
    await take_slot(s.limiter)
    await s.avito.token()
    return {"success": True, "token": s.avito.token_state()}
