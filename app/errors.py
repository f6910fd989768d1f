"""The platform's error hierarchy and its mapping to HTTP.

Services raise these (never HTTP types); one handler turns every error into a
machine-readable body: ``{"error": code, "message": text, "fields": [...]}``.
Domains subclass them in their own ``errors.py``.
"""

from __future__ import annotations

import re
import sqlite3
from typing import Any, ClassVar
from urllib.parse import quote

import asyncpg
import msgspec
from litestar import MediaType, Request, Response
from litestar.exceptions import (
    HTTPException,
    NotAuthorizedException,
    PermissionDeniedException,
    ValidationException,
)
from litestar.response import Redirect
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR

from app.logs import get_logger

log = get_logger(__name__)
_NAMED = re.compile(r"^([A-Za-z][A-Za-z0-9]*): (.+)$", re.S)


class FieldError(msgspec.Struct, frozen=True):
    path: str
    message: str


class ErrorBody(msgspec.Struct, frozen=True):
    """What every failed request answers."""

    error: str
    message: str
    fields: list[FieldError] = []
    request_id: str = ""


class AppError(Exception):
    """Base of every error a service may raise on purpose."""

    status_code: ClassVar[int] = 400
    code: ClassVar[str] = "bad_request"

    def __init__(self, message: str, *, fields: list[FieldError] | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.fields = fields or []
        if code:
            self.code = code  # type: ignore[misc]


class NotFound(AppError):
    status_code = 404
    code = "not_found"


class Conflict(AppError):
    status_code = 409
    code = "conflict"


class Forbidden(AppError):
    status_code = 403
    code = "forbidden"


class Unauthorized(AppError):
    status_code = 401
    code = "unauthorized"


class Invalid(AppError):
    """Input that parses but breaks a rule; ``fields`` name where."""

    status_code = 422
    code = "invalid"


def _request_id(request: Request[Any, Any, Any]) -> str:
    from app import context

    return context.current().request_id


def _body(
    request: Request[Any, Any, Any], status: int, error: str, message: str, fields: list[FieldError] | None = None
) -> Response[ErrorBody]:
    return Response(
        ErrorBody(error=error, message=message, fields=fields or [], request_id=_request_id(request)),
        status_code=status,
        media_type=MediaType.JSON,
    )


def _wants_page(request: Request[Any, Any, Any]) -> bool:
    """Browser page routes get redirects and HTML; /api and tools get JSON."""
    path = request.url.path
    return not path.startswith(("/api", "/health", "/ready", "/metrics", "/schema"))


def app_error_handler(request: Request[Any, Any, Any], exc: AppError) -> Response[Any]:
    response = _body(request, exc.status_code, exc.code, exc.message, exc.fields)
    retry_after = getattr(exc, "retry_after_s", None)  # e.g. video's busy answer: when to come back
    if retry_after:
        response.headers["Retry-After"] = str(retry_after)
    return response


def _validation_fields(extra: Any) -> list[FieldError]:
    fields: list[FieldError] = []
    for item in extra if isinstance(extra, list) else []:
        if isinstance(item, dict):
            key = str(item.get("key") or "")
            message = str(item.get("message", "invalid value"))
            # msgspec reports the location as "... - at `$.field`"
            if " - at `" in message:
                message, _, where = message.partition(" - at `")
                key = where.rstrip("`")
            elif (named := _NAMED.match(message)) is not None:
                # a cross-field rule (``__post_init__``) names its field first
                key, message = f"$.{named.group(1)}", named.group(2)
            if key and not key.startswith("$"):
                key = f"$.{key}"
            fields.append(FieldError(path=key or "$", message=message))
    return fields


def validation_handler(request: Request[Any, Any, Any], exc: ValidationException) -> Response[Any]:
    fields = _validation_fields(exc.extra)
    message = fields[0].message if fields else str(exc.detail)
    return _body(request, 422, "validation", message, fields)


def http_error_handler(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    if isinstance(exc, NotAuthorizedException) and _wants_page(request) and request.method == "GET":
        return Redirect(f"/login?next={quote(request.url.path)}")
    code = {
        401: "unauthorized",
        403: "forbidden",
        404: "not_found",
        405: "method_not_allowed",
        413: "too_large",
        415: "unsupported_media_type",
        429: "too_many_requests",
    }.get(exc.status_code, "bad_request" if exc.status_code < 500 else "server_error")
    if isinstance(exc, PermissionDeniedException) and "CSRF" in str(exc.detail):
        code = "csrf"
    return _body(request, exc.status_code, code, str(exc.detail))


def integrity_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """A unique or foreign-key constraint refused the write: the transaction rolled back."""
    return _body(request, 409, "conflict", "the change conflicts with existing data")


def internal_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.exception("unhandled error", path=request.url.path)
    return _body(request, HTTP_500_INTERNAL_SERVER_ERROR, "server_error", "internal error")


EXCEPTION_HANDLERS: dict[type[Exception] | int, Any] = {
    AppError: app_error_handler,
    ValidationException: validation_handler,
    HTTPException: http_error_handler,
    sqlite3.IntegrityError: integrity_handler,
    asyncpg.IntegrityConstraintViolationError: integrity_handler,
    HTTP_500_INTERNAL_SERVER_ERROR: internal_handler,
}
