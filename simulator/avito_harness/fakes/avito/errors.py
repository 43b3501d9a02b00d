"""Avito's error answers, raised by behaviour and turned into HTTP in one place.

Body shape (all Avito sections): ``{"error": {"code": N, "message": "..."}}``;
validation errors add ``error.fields`` (parameter -> problem). The token
endpoint is the exception: Avito documents no error body there, so it answers
in the OAuth 2.0 shape (RFC 6749 section 5.2), which is what OAuth clients parse.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from avito_harness.fakes.avito.near_misses import served_template
from avito_harness.fakes.reasons import Reason

__all__ = [
    "AvitoError",
    "BadRequestError",
    "ForbiddenError",
    "NotFoundError",
    "OAuthError",
    "PaymentRequiredError",
    "RateLimitedError",
    "UnauthorizedError",
    "ValidationFailedError",
    "avito_error_response",
    "install_error_handlers",
    "note_error",
    "oauth_error_response",
    "stock_error_body",
]

STOCK_MESSAGES = {
    400: "Bad Request",
    401: "Unauthorized",
    402: "Payment required",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    413: "Request entity too large",
    429: "Too Many Requests",
    500: "Error while processing request. Please, contact support",
    502: "Bad gateway",
    503: "Service temporarily unavailable. Please, contact support",
    504: "Gateway timeout",
}


def stock_error_body(status: int) -> dict[str, Any]:
    """The body Avito sends for ``status`` when nothing more specific is known."""
    return {"error": {"code": status, "message": STOCK_MESSAGES.get(status, "Error")}}


class AvitoError(Exception):
    """Base: an Avito error answer."""

    status = 500

    def __init__(self, message: str | None = None, *, headers: dict[str, str] | None = None,
                 reason: Reason | None = None) -> None:
        self.message = message or STOCK_MESSAGES.get(self.status, "Error")
        self.headers = headers or {}
        self.reason = reason  # why, as a code, for the journal (never in Avito's answer)
        super().__init__(self.message)

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.status, "message": self.message}}


class BadRequestError(AvitoError):
    status = 400


class ValidationFailedError(AvitoError):
    """400 with ``fields``: which parameter is wrong and why."""

    status = 400

    def __init__(self, fields: dict[str, str]) -> None:
        super().__init__("Validation error")
        self.fields = fields

    def body(self) -> dict[str, Any]:
        return {"error": {"code": 400, "message": self.message, "fields": self.fields}}


class UnauthorizedError(AvitoError):
    status = 401


class PaymentRequiredError(AvitoError):
    status = 402


class ForbiddenError(AvitoError):
    status = 403


class NotFoundError(AvitoError):
    status = 404


class RateLimitedError(AvitoError):
    """Avito's 429 body has only ``code`` required; we add the usual message."""

    status = 429


class OAuthError(Exception):
    """A token-endpoint error in RFC 6749 shape (``error`` + ``error_description``)."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error, self.description, self.status = error, description, status


def allowed_methods(request: Request) -> list[str]:
    """Every method some route serves on this path (Starlette names only the first route's)."""
    allowed = []
    for method in ("DELETE", "GET", "PATCH", "POST", "PUT"):
        scope = {**request.scope, "method": method}
        if any(route.matches(scope)[0] == Match.FULL for route in request.app.router.routes):
            allowed.append(method)
    return allowed


def _field_name(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header", "form")]
    return ".".join(parts) or "body"


def near_miss(request: Request) -> str | None:
    """The path Avito serves that this unknown one nearly is (another API version, a trailing slash)."""
    template = served_template(request.app.openapi(), request.method, request.url.path)
    return f"no such path at Avito; Avito serves {request.method} {template}" if template else None


def note_error(notes: dict[str, Any], exc: AvitoError) -> None:
    """What the journal learns of an error answer, as codes: its reason, and which fields were wrong (the judge
    tells a send without ``type`` by them). The framework's routes and the fast routes both note through here."""
    if exc.reason is not None:
        notes["reason"] = exc.reason
    if isinstance(exc, ValidationFailedError):
        notes["reason"], notes["fields"] = Reason.VALIDATION_FAILED, sorted(exc.fields)


def avito_error_response(exc: AvitoError) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)


def oauth_error_response(exc: OAuthError) -> JSONResponse:
    return JSONResponse({"error": exc.error, "error_description": exc.description}, status_code=exc.status)


def install_error_handlers(app: FastAPI) -> None:
    """Map every failure (ours, FastAPI's, unexpected) to Avito's error shape."""

    @app.exception_handler(AvitoError)
    async def _avito(request: Request, exc: AvitoError) -> JSONResponse:
        note_error(request.scope.setdefault("state", {}), exc)
        return avito_error_response(exc)

    @app.exception_handler(OAuthError)
    async def _oauth(_: Request, exc: OAuthError) -> JSONResponse:
        return oauth_error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        fields = {_field_name(tuple(e["loc"])): str(e["msg"]) for e in exc.errors()}
        note_error(request.scope.setdefault("state", {}), ValidationFailedError(fields))
        return JSONResponse(ValidationFailedError(fields).body(), status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        body = stock_error_body(exc.status_code)
        if exc.detail and exc.detail != HTTPStatus(exc.status_code).phrase:
            body["error"]["message"] = str(exc.detail)
        headers = dict(exc.headers or {})
        if exc.status_code == 404:
            hint = near_miss(request)
            if hint:  # for the journal and transcripts; Avito's answer stays Avito's
                request.state.hint, request.state.reason = hint, Reason.OTHER_API_VERSION
        if exc.status_code == 405:
            headers["Allow"] = ", ".join(allowed_methods(request))
        return JSONResponse(body, status_code=exc.status_code, headers=headers)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:  # pragma: no cover - a bug
        return JSONResponse(stock_error_body(500), status_code=500)
