"""Gateway errors: one class per wire error (its status, code and retryability fixed in the class), one table for
Avito's errors, one place that renders them.

Every error body has SPEC's shape ``{"success": false, "error": "...", "details": {...}}``
plus a stable machine ``code`` and ``retryable`` / ``retry_after`` so n8n can decide.
"""

from __future__ import annotations

import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

__all__ = ["AVITO_ERROR_TABLE", "AvitoApiError", "AvitoBadRequestError", "AvitoConflictError",
    "AvitoForbiddenError", "AvitoNotFoundError", "AvitoOtherError", "AvitoPaymentRequiredError",
    "AvitoRateLimitedError", "AvitoTimeoutError", "AvitoTooLargeError", "AvitoUnauthorizedError",
    "AvitoUnavailableError", "AvitoUnreachableError", "DatabaseTimeoutError", "DatabaseUnreachableError",
    "FrameworkHttpError", "GatewayError", "IdempotencyInProgressError", "IdempotencyKeyReusedError",
    "ImageHostNotAllowedError", "ImageSourceRefusedError", "ImageSourceUnreachableError", "ImageTooLargeError",
    "InternalError", "InvalidRequestError", "MethodNotAllowedError", "NotFoundError", "RateLimitedError",
    "SendOutcomeUnknownError", "StorageError", "UnauthorizedError", "avito_error", "avito_transport_error",
    "install_error_handlers"]


class GatewayError(Exception):
    """Base: an error answer of the gateway. Subclasses fix ``status``, ``code`` and ``retryable``."""

    status = 500
    code = "internal_error"
    retryable = False

    def __init__(self, message: str, *, details: dict[str, Any] | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details
        self.retry_after = retry_after

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


class InternalError(GatewayError):
    """A bug: the gateway met something it does not handle."""


class InvalidRequestError(GatewayError):
    status, code = 400, "invalid_request"


class UnauthorizedError(GatewayError):
    status, code = 401, "unauthorized"


class NotFoundError(GatewayError):
    status, code = 404, "not_found"


class MethodNotAllowedError(GatewayError):
    status, code = 405, "method_not_allowed"


class FrameworkHttpError(GatewayError):
    """Any other HTTP error the web framework raises itself (its status is the framework's)."""

    code = "http_error"

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status


class IdempotencyKeyReusedError(GatewayError):
    status, code = 422, "idempotency_key_reused"


class IdempotencyInProgressError(GatewayError):
    """The key's request is under way on another replica: retry with the same key to get its answer."""

    status, code, retryable = 409, "idempotency_in_progress", True


class SendOutcomeUnknownError(GatewayError):
    """A post went out and neither Avito's answer nor the chat says whether it landed. The key stays claimed:
    a retry with the same Idempotency-Key reads the chat before any new post; a new key may post it twice."""

    status, code, retryable = 504, "send_outcome_unknown", True


class ImageHostNotAllowedError(GatewayError):
    status, code = 403, "image_host_not_allowed"


class ImageTooLargeError(GatewayError):
    status, code = 413, "image_too_large"


class ImageSourceRefusedError(GatewayError):
    """``image_url`` answered, but not with the image (a retry gets the same answer)."""

    status, code = 502, "image_fetch_failed"


class ImageSourceUnreachableError(GatewayError):
    """``image_url`` did not answer (connection, timeout): a retry may work."""

    status, code, retryable = 502, "image_fetch_failed", True


class RateLimitedError(GatewayError):
    status, code, retryable = 429, "rate_limited", True


class StorageError(GatewayError):
    """The gateway's own database refused a write (disk full, I/O error): nothing was accepted."""

    status, code, retryable = 503, "storage_unavailable", True


class DatabaseUnreachableError(StorageError):
    """The database server cannot be reached (DATABASE_URL): at start the gateway does not listen."""


class DatabaseTimeoutError(StorageError):
    """The database did not answer within DATABASE_TIMEOUT (a lock held too long, a stalled server)."""


# --- Avito's errors --------------------------------------------------------------------------------------------

class AvitoApiError(GatewayError):
    """Avito answered with an error (or did not answer); ``avito_status`` is its HTTP status (None: no answer).
    ``before_request``: the call failed before its request left the gateway (no token, no connection), so
    nothing reached Avito."""

    status, code = 502, "avito_error"

    def __init__(self, message: str, *, avito_status: int | None, details: dict[str, Any] | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(message, details=details, retry_after=retry_after)
        self.avito_status = avito_status
        self.before_request = False

    @property
    def may_have_posted(self) -> bool:
        """The request reached Avito and was not refused (no answer, a 5xx, an unreadable 2xx)."""
        return not self.before_request and not (self.avito_status is not None and 300 <= self.avito_status < 500)


class AvitoBadRequestError(AvitoApiError):
    status, code = 400, "avito_bad_request"


class AvitoUnauthorizedError(AvitoApiError):
    """Still 401 after a fresh token: a credentials problem (the caller's request was fine)."""

    status, code = 502, "avito_unauthorized"


class AvitoPaymentRequiredError(AvitoApiError):
    """No Messenger tariff."""

    status, code = 402, "avito_payment_required"


class AvitoForbiddenError(AvitoApiError):
    """Still 403 after a fresh token: scope or an employee's key."""

    status, code = 403, "avito_forbidden"


class AvitoNotFoundError(AvitoApiError):
    status, code = 404, "avito_not_found"


class AvitoConflictError(AvitoApiError):
    status, code = 409, "avito_conflict"


class AvitoTooLargeError(AvitoApiError):
    status, code = 413, "avito_too_large"


class AvitoRateLimitedError(AvitoApiError):
    status, code, retryable = 429, "avito_rate_limited", True


class AvitoUnavailableError(AvitoApiError):
    """Avito answered 5xx."""

    status, code, retryable = 502, "avito_unavailable", True


class AvitoTimeoutError(AvitoApiError):
    status, code, retryable = 504, "avito_timeout", True


class AvitoUnreachableError(AvitoApiError):
    status, code, retryable = 502, "avito_unreachable", True


class AvitoOtherError(AvitoApiError):
    """An Avito status the table does not name, or an answer the gateway cannot use."""


#: Avito's answer (its status, ``5xx``, ``timeout``, ``transport``, ``other``) -> the gateway's error class.
AVITO_ERROR_TABLE: dict[int | str, type[AvitoApiError]] = {
    400: AvitoBadRequestError,
    401: AvitoUnauthorizedError,
    402: AvitoPaymentRequiredError,
    403: AvitoForbiddenError,
    404: AvitoNotFoundError,
    409: AvitoConflictError,
    413: AvitoTooLargeError,
    429: AvitoRateLimitedError,
    "5xx": AvitoUnavailableError,
    "timeout": AvitoTimeoutError,
    "transport": AvitoUnreachableError,
    "other": AvitoOtherError,
}


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
    details = body if isinstance(body, dict) else {"body": body}
    return AVITO_ERROR_TABLE[key](f"Avito API Error {status}: {_avito_message(body)}", avito_status=status,
                                  details=details, retry_after=retry_after)


def avito_transport_error(kind: str, message: str) -> AvitoApiError:
    """No answer from Avito: ``kind`` is ``timeout`` or ``transport``."""
    return AVITO_ERROR_TABLE[kind](message, avito_status=None)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(GatewayError)
    async def _gateway(_: Request, exc: GatewayError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers())

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = {".".join(str(p) for p in e["loc"] if p != "body") or "body": str(e["msg"]) for e in exc.errors()}
        summary = "; ".join(f"{k}: {v}" for k, v in problems.items())
        error = InvalidRequestError(f"Invalid request: {summary}", details={"fields": problems})
        return JSONResponse(error.body(), status_code=error.status)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        error: GatewayError
        if exc.status_code == 404:
            error = NotFoundError(str(exc.detail))
        elif exc.status_code == 405:
            error = MethodNotAllowedError(str(exc.detail))
        else:
            error = FrameworkHttpError(str(exc.detail), status=exc.status_code)
        return JSONResponse(error.body(), status_code=error.status, headers=exc.headers)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:  # pragma: no cover - a bug
        error = InternalError(f"Internal error: {type(exc).__name__}")
        return JSONResponse(error.body(), status_code=error.status)
