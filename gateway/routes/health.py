"""/health, /info (no API key) and /api/token."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from gateway import __version__
from gateway.deps import Services, require_api_key, services
from gateway.errors import GatewayError
from gateway.models import ERRORS, HealthAnswer, InfoAnswer, TokenAnswer

__all__ = ["router"]

router = APIRouter()


@router.get("/health", tags=["monitoring"], response_model=HealthAnswer, responses={503: {"model": HealthAnswer}})
async def health(s: Services = Depends(services)) -> JSONResponse:
    """``healthy`` only when the gateway can work: a token is obtainable and storage is writable."""
    checks: dict[str, Any] = {"storage": s.store.writable(s.clock.now())}
    reason = None if checks["storage"] else "storage is not writable"
    try:
        await s.avito.token()
        checks["avito_token"] = True
    except GatewayError as exc:
        checks["avito_token"] = False
        reason = reason or f"cannot obtain an Avito token: {exc.message}"
    checks["n8n_configured"] = bool(s.settings.n8n_webhook_url)
    counts = s.store.counts()
    body = {"status": "healthy" if reason is None else "unhealthy", "checks": checks,
            "outbox_pending": counts.get("outbox_pending", 0), "outbox_dead": counts.get("outbox_dead", 0)}
    if reason:
        body["reason"] = reason
    return JSONResponse(body, status_code=200 if reason is None else 503)


@router.get("/info", tags=["monitoring"], response_model=InfoAnswer)
async def info(s: Services = Depends(services)) -> dict[str, Any]:
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
    }


@router.get("/api/token", dependencies=[Depends(require_api_key)], tags=["diagnostics"], response_model=TokenAnswer,
            responses=ERRORS["avito"])
async def token(s: Services = Depends(services)) -> dict[str, Any]:
    """Token state (obtains one if needed). Never shows any part of the token."""
    s.messenger.take_slot()
    await s.avito.token()
    return {"success": True, "token": s.avito.token_state()}
