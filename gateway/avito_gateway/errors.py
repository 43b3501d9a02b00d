"""Gateway errors: one class per failure, one table for Avito's errors, one place that renders them.

Every error body has SPEC's shape ``{"success": false, "error": "...", "details": {...}}``
plus a stable machine ``code`` and ``retryable`` / ``retry_after`` so n8n can decide.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

__all__ = [
    "AVITO_ERROR_TABLE",
    "AvitoApiError",
    "GatewayError",
    "InvalidRequestError",
    "NotFoundError",
    "RateLimitedError",
    "StorageError",
    "UnauthorizedError",
    "avito_error",
    "avito_transport_error",
    "install_error_handlers",
]


class GatewayError(Exception):
    """Base: an error answer of the gateway."""

    status = 500
    code = "internal_error"
    retryable = False

    def __init__(
        self,
        message: str,
        *,
        details: dict[str, Any] | None = None,
        retry_after: float | None = None,
        status: int | None = None,
        code: str | None = None,
        retryable: bool | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details = details
        self.retry_after = retry_after
        if status is not None:
            self.status = status
        if code is not None:
            self.code = code
        if retryable is not None:
            self.retryable = retryable

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"success": False, "error": self.message, "code": self.code, "retryable": self.retryable,
                               "retry_after": _whole(self.retry_after)}
        if self.details is not None:
            out["details"] = self.details
        return out

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(_whole(self.retry_after))} if self.retry_after is not None else {}


def _whole(seconds: float | None) -> int | None:
    return None if seconds is None else max(1, math.ceil(seconds))


class InvalidRequestError(GatewayError):
    status, code = 400, "invalid_request"


class UnauthorizedError(GatewayError):
    status, code = 401, "unauthorized"


class NotFoundError(GatewayError):
    status, code = 404, "not_found"


class RateLimitedError(GatewayError):
    status, code, retryable = 429, "rate_limited", True


class AvitoApiError(GatewayError):
    """Avito answered with an error (or did not answer); see :data:`AVITO_ERROR_TABLE`."""

    def __init__(self, message: str, *, avito_status: int | None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.avito_status = avito_status


@dataclass(frozen=True)
class Mapping:
    status: int
    code: str
    retryable: bool


#: Avito's answer -> the gateway's status, machine code and whether a retry can help.
AVITO_ERROR_TABLE: dict[int | str, Mapping] = {
    400: Mapping(400, "avito_bad_request", False),
    401: Mapping(502, "avito_unauthorized", False),  # still 401 after a fresh token: credentials problem
    402: Mapping(402, "avito_payment_required", False),  # no Messenger tariff
    403: Mapping(403, "avito_forbidden", False),  # still 403 after a fresh token: scope or employee key
    404: Mapping(404, "avito_not_found", False),
    409: Mapping(409, "avito_conflict", False),
    413: Mapping(413, "avito_too_large", False),
    429: Mapping(429, "avito_rate_limited", True),
    "5xx": Mapping(502, "avito_unavailable", True),
    "timeout": Mapping(504, "avito_timeout", True),
    "transport": Mapping(502, "avito_unreachable", True),
    "other": Mapping(502, "avito_error", False),
}


class StorageError(GatewayError):
    """The gateway's own database refused a write (disk full, I/O error): nothing was accepted."""

    status = 503
    code = "storage_unavailable"
    retryable = True


def _avito_message(body: Any) -> str:
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        if isinstance(error, str):
            return str(body.get("error_description") or error)
        if body.get("message"):
            return str(body["message"])
    if isinstance(body, str) and body.strip():
        return body.strip()[:200]
    return "no error message"


def avito_error(status: int, body: Any, *, retry_after: float | None = None) -> AvitoApiError:
    """The gateway error for an Avito HTTP error answer."""
    key: int | str = status if status in AVITO_ERROR_TABLE else ("5xx" if status >= 500 else "other")
    m = AVITO_ERROR_TABLE[key]
    details = body if isinstance(body, dict) else {"body": body}
    return AvitoApiError(
        f"Avito API Error {status}: {_avito_message(body)}",
        avito_status=status,
        details=details,
        retry_after=retry_after,
        status=m.status,
        code=m.code,
        retryable=m.retryable,
    )


def avito_transport_error(kind: str, message: str) -> AvitoApiError:
    m = AVITO_ERROR_TABLE[kind]
    return AvitoApiError(message, avito_status=None, status=m.status, code=m.code, retryable=m.retryable)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(GatewayError)
    async def _gateway(_: Request, exc: GatewayError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers())

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = {".".join(str(p) for p in e["loc"] if p != "body") or "body": str(e["msg"]) for e in exc.errors()}
        summary = "; ".join(f"{k}: {v}" for k, v in problems.items())
        error = InvalidRequestError(f"Invalid request: {summary}", details={"fields": problems})
        return JSONResponse(error.body(), status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        error = GatewayError(str(exc.detail), status=exc.status_code, code=code)
        return JSONResponse(error.body(), status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:  # pragma: no cover - a bug
        error = GatewayError(f"Internal error: {type(exc).__name__}")
        return JSONResponse(error.body(), status_code=500)
