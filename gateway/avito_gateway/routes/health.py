"""/health, /info (no API key) and /api/token."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from avito_gateway import __version__
from avito_gateway.deps import Services, deployment, require_api_key, services
from avito_gateway.errors import GatewayError, StorageError
from avito_gateway.models import ERRORS, HealthAnswer, InfoAnswer, TokenAnswer
from avito_gateway.ratelimit import take_slot

__all__ = ["router"]

router = APIRouter()


#: The longest /health waits for a token request under way (it never starts one per call: the token is shared,
#: and so is its failure, see avito_gateway.avito_token).
TOKEN_WAIT = 5.0


async def _token_problem(s: Services) -> str | None:
    try:
        await asyncio.wait_for(asyncio.shield(s.avito.token()), TOKEN_WAIT)
    except GatewayError as exc:
        return exc.message
    except TimeoutError:
        return f"Avito has not answered the token request within {TOKEN_WAIT:g} s"
    return None


def _webhook_auth(accounts: list[Services]) -> str:
    """``open`` as soon as one account's plain path is open: anyone who reaches the gateway may post there."""
    return "open" if any(a.webhook_auth.mode == "open" for a in accounts) else "secret_path"


@router.get("/health", tags=["monitoring"], response_model=HealthAnswer, responses={503: {"model": HealthAnswer}})
async def health(request: Request, s: Services = Depends(services)) -> JSONResponse:
    """``healthy`` (200) only when the gateway can work and is keeping up; else 503 with the reason.

    ``unhealthy``: storage cannot be written (a failed write, a database that does not answer within
    DATABASE_TIMEOUT, or less free disk than STORAGE_MIN_FREE_BYTES) or an account cannot get an Avito token.
    ``degraded``: messages are not reaching n8n (the oldest waiting one is older than HEALTH_OUTBOX_MAX_AGE,
    HEALTH_FORWARD_FAILURES forwards in a row failed, or dead letters wait for a replay). ``by_account``: each account's token, webhook path and n8n
    URL. Answers within DATABASE_TIMEOUT + 1 s (+ 5 s for a token request under way), whatever the database does."""
    now = s.clock.now()
    free = _free_bytes(s.settings.data_dir)
    writable = await s.store.writable(now)
    checks: dict[str, Any] = {"storage": writable and free >= s.settings.storage_min_free_bytes}
    problems: list[str] = []
    if not checks["storage"]:
        problems.append(f"storage is not writable: {s.store.write_error}" if s.store.write_error
                        else f"storage is not writable (free disk {free} bytes)")
    accounts = deployment(request).accounts
    by_account = []
    for account in accounts:
        token_problem = await _token_problem(account)
        if token_problem is not None:
            whose = "" if len(accounts) == 1 else f" for account {account.account.name}"
            problems.append(f"cannot obtain an Avito token{whose}: {token_problem}")
        by_account.append({"name": account.account.name, "user_id": account.account.user_id,
                           "avito_token": token_problem is None, "webhook_auth": account.webhook_auth.mode,
                           "n8n_configured": bool(account.account.n8n_webhook_url)})
    checks["avito_token"] = all(a["avito_token"] for a in by_account)
    checks["n8n_configured"] = all(a["n8n_configured"] for a in by_account)
    # the outbox counts last read stand while the store cannot be read
    counts: dict[str, int] = getattr(request.app.state, "health_counts", {})
    age = 0.0
    if writable:  # a store that cannot take a write is not asked to count (the answer stays bounded)
        try:
            counts = await s.store.counts()
            oldest = await s.store.oldest_pending()
            age = max(0.0, now - oldest) if oldest is not None else 0.0
            request.app.state.health_counts = counts
        except StorageError as exc:
            checks["storage"] = False
            problems.append(f"storage cannot be read: {exc.message}")
    failures = s.forwarder.failures_in_a_row
    lagging = []
    if age > s.settings.health_outbox_max_age:
        lagging.append(f"the oldest message waiting for n8n arrived {age:.0f} s ago")
    if counts.get("outbox_dead"):
        lagging.append(f"{counts['outbox_dead']} message(s) were given up on after OUTBOX_MAX_ATTEMPTS forwards: "
                       "replay them (POST /api/outbox/dead/replay)")
    if failures >= s.settings.health_forward_failures:
        lagging.append(f"{failures} forwards to n8n failed in a row (last: {s.forwarder.last_error})")
    checks["forwarding"] = not lagging
    status = "unhealthy" if problems else ("degraded" if lagging else "healthy")
    body: dict[str, Any] = {
        "status": status, "checks": checks,
        "outbox_pending": counts.get("outbox_pending", 0), "outbox_dead": counts.get("outbox_dead", 0),
        "outbox_oldest_pending_age": round(age, 3), "forward_failures_in_a_row": failures,
        "webhook_auth": _webhook_auth(accounts), "store": s.store.engine, "by_account": by_account,
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
    """The settings summary SPEC names, for the whole deployment and ``by_account``; never touches the database."""
    st = s.settings
    accounts = deployment(request).accounts
    return {
        "service": "avito-messenger-api",
        "version": __version__,
        "rate_limit_requests": st.rate_limit_requests,
        "rate_limit_window": int(st.rate_limit_window) if float(st.rate_limit_window).is_integer() else st.rate_limit_window,
        "max_connections": st.max_connections,
        "avito_user_id": st.avito_user_id,
        "avito_api_base_url": st.avito_api_base_url,
        "n8n_configured": all(a.account.n8n_webhook_url for a in accounts),
        "webhook_secret_set": all(a.webhook_auth.configured for a in accounts),
        "webhook_auth": _webhook_auth(accounts),
        "accounts": len(accounts),
        "store": s.store.engine,
        "by_account": [{"name": a.account.name, "user_id": a.account.user_id, "webhook_auth": a.webhook_auth.mode,
                        "webhook_secret_set": a.webhook_auth.configured,
                        "n8n_configured": bool(a.account.n8n_webhook_url)} for a in accounts],
    }


@router.get("/api/token", dependencies=[Depends(require_api_key)], tags=["diagnostics"], response_model=TokenAnswer,
            responses=ERRORS["avito"])
async def token(s: Services = Depends(services)) -> dict[str, Any]:
    """Token state (obtains one if needed). Never shows any part of the token."""
    await take_slot(s.limiter)
    await s.avito.token()
    return {"success": True, "token": s.avito.token_state()}
