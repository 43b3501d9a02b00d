"""Avito's OAuth endpoints: ``/token`` (and ``/token/``) for three grants, and a consent stand-in."""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import parse_qsl, unquote_plus, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, RedirectResponse

from avito_harness.fakes.avito.backend import AvitoBackend
from avito_harness.fakes.avito.errors import OAuthError
from avito_harness.fakes.avito.near_misses import note_near_miss, serving
from avito_harness.fakes.avito.tokens import ALL_SCOPES
from avito_harness.fakes.reasons import Reason

__all__ = ["router", "issue_token", "TOKEN_HEADERS"]

TOKEN_HEADERS = {"Cache-Control": "no-store"}

router = APIRouter()


def token_params(query_string: str, content_type: str, raw: bytes) -> dict[str, str]:
    """Form body first (Avito's documented encoding), then the query string (seen in the wild)."""
    params = form_fields(query_string)
    if raw and "json" in content_type:
        try:
            body = json.loads(raw)
        except ValueError:
            raise OAuthError("invalid_request", "body is not valid JSON") from None
        if isinstance(body, dict):
            params.update({k: str(v) for k, v in body.items() if v is not None})
    elif raw:
        params.update(form_fields(raw.decode("utf-8", errors="replace")))
    return params


def form_fields(text: str) -> dict[str, str]:
    """``parse_qsl(text, keep_blank_values=True)`` as a dict (the last value of a repeated name wins). Text with
    no escapes (``%``, ``+``) is only split, which is what parse_qsl does to it, at a third of the cost."""
    if "%" in text or "+" in text:
        return dict(parse_qsl(text, keep_blank_values=True))
    fields = {}
    for field in text.split("&"):
        if field:
            name, _, value = field.partition("=")
            fields[name] = value
    return fields


def _require(params: dict[str, str], *names: str) -> list[str]:
    missing = [n for n in names if not params.get(n)]
    if missing:
        raise OAuthError("invalid_request", f"missing parameter(s): {', '.join(missing)}")
    return [params[n] for n in names]


@router.post("/token", operation_id="getAccessToken")
@router.post("/token/", include_in_schema=False)
async def token(request: Request) -> JSONResponse:
    """Avito's documented call: POST, form body."""
    return await _token(request)


@router.get("/token", operation_id="getAccessTokenByQuery")
@router.get("/token/", include_in_schema=False)
async def token_by_query(request: Request) -> JSONResponse:
    """Not documented by Avito, but seen in integrations: GET with the parameters in the query."""
    return await _token(request)


def _basic(authorization: str) -> tuple[str, str] | None:
    scheme, _, encoded = authorization.partition(" ")
    if scheme.lower() != "basic" or not encoded:
        return None
    try:
        user, sep, password = base64.b64decode(encoded, validate=True).decode("utf-8").partition(":")
    except (ValueError, UnicodeDecodeError):
        return None
    return (unquote_plus(user), unquote_plus(password)) if sep else None


async def _token(request: Request) -> JSONResponse:
    answer = issue_token(request.app.state.backend, request.scope.get("query_string", b"").decode("latin-1"),
                         request.headers.get("content-type", ""),
                         request.headers.get("authorization", ""), await request.body(),
                         request.scope.setdefault("state", {}))
    return JSONResponse(answer, headers=TOKEN_HEADERS)


def issue_token(
    backend: AvitoBackend, query_string: str, content_type: str, authorization: str, raw: bytes,
    notes: dict[str, Any],
) -> dict[str, Any]:
    """The token answer for one request; raises :class:`OAuthError`. ``notes`` (the request's state) learns the
    account, and why credentials were not seen, for the journal."""
    params = token_params(query_string, content_type, raw)
    basic = _basic(authorization)
    if basic is not None and not params.get("client_id"):
        hint = ("client_id and client_secret came as HTTP Basic (Authorization header); Avito documents them as form "
                "fields of the body (SIM_TOKEN_BASIC_AUTH=true accepts Basic)")
        if backend.settings.token_basic_auth:
            params["client_id"], params["client_secret"] = basic
        elif serving(backend.settings):
            params["client_id"], params["client_secret"] = basic
            note_near_miss(notes, Reason.TOKEN_BASIC_AUTH, hint)
        else:  # Avito's own answer names only the missing fields; the journal says why they are missing
            notes["reason"], notes["hint"] = Reason.TOKEN_BASIC_AUTH, hint
    (grant,) = _require(params, "grant_type")
    client_id, client_secret = _require(params, "client_id", "client_secret")
    state = backend.by_credentials(client_id, client_secret)
    notes["account"] = state.user_id
    if grant == "client_credentials":
        return backend.tokens.client_credentials(state.user_id)
    if grant == "authorization_code":
        (code,) = _require(params, "code")
        return backend.tokens.exchange_code(client_id, code)
    if grant == "refresh_token":
        (refresh,) = _require(params, "refresh_token")
        return backend.tokens.refresh(client_id, refresh)
    raise OAuthError("unsupported_grant_type", f"grant_type {grant!r} is not supported")


@router.get("/oauth", include_in_schema=False)
async def authorize(request: Request) -> RedirectResponse:
    """Stand-in for Avito's consent page: approves at once and redirects back with ``?code=``."""
    backend: AvitoBackend = request.app.state.backend
    q = request.query_params
    client_id = q.get("client_id", "")
    user_id = next((s.user_id for s in backend.accounts.values() if s.account.client_id == client_id), None)
    if user_id is None:
        raise OAuthError("invalid_client", f"unknown client_id {client_id!r}")
    state = backend.account(user_id)
    code = backend.tokens.new_code(user_id, client_id, q.get("scope") or ALL_SCOPES)
    target = q.get("redirect_uri") or state.account.redirect_uri
    extra = {"code": code, **({"state": q["state"]} if "state" in q else {})}
    sep = "&" if "?" in target else "?"
    return RedirectResponse(f"{target}{sep}{urlencode(extra)}", status_code=302)
