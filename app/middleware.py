"""ASGI middleware of the platform: request context and access log, bearer-aware CSRF."""

from __future__ import annotations

import logging
import re
import secrets
import time
from typing import Any

from litestar.enums import ScopeType
from litestar.middleware.csrf import CSRFMiddleware
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from app import context
from app.logs import get_logger

log = get_logger("branchless.access")
_access = logging.getLogger("branchless.access")
SESSION_COOKIE = "branchless_session"
"""The page session's cookie (a revocable token, see ``app.security``)."""
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")


def _client_ip(scope: Scope) -> str:
    client = scope.get("client")
    return client[0] if client else ""


def request_context_middleware(app: ASGIApp) -> ASGIApp:
    """Give every request an id (or keep a sane incoming ``X-Request-ID``), put it in
    the request context (which the logs read) and the response headers, and write
    one access line (when the log level lets it through: the check is per request,
    the line's cost only when written)."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in (ScopeType.HTTP, ScopeType.WEBSOCKET):
            await app(scope, receive, send)
            return
        incoming = ""
        for name, value in scope.get("headers", []):
            if name == b"x-request-id":
                incoming = value.decode("latin-1")
        request_id = incoming if _REQUEST_ID.match(incoming) else secrets.token_hex(8)
        context.set_context(context.RequestContext(request_id=request_id, ip=_client_ip(scope)))
        started = time.perf_counter()
        status = 500
        header = (b"x-request-id", request_id.encode("latin-1"))

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        try:
            await app(scope, receive, send_wrapper)
        finally:
            if scope["type"] == ScopeType.HTTP and _access.isEnabledFor(logging.INFO):
                ctx = context.current()
                log.info(
                    "request",
                    method=scope.get("method"),
                    path=scope.get("path"),
                    status=status,
                    ms=round((time.perf_counter() - started) * 1000, 2),
                    actor_id=ctx.actor_id,
                )

    return middleware


class BearerAwareCSRFMiddleware(CSRFMiddleware):
    """Litestar's double-submit CSRF check wherever a browser's ambient credential
    could be abused, skipped where none is involved.

    - A request with ``Authorization: Bearer`` is authenticated by that header
      alone (cookies are ignored, see ``app.security``), and a browser never adds
      that header on its own: no forgery possible.
    - A JSON API call (``/api``) without the session cookie acts anonymously.
    Pages (login form included) are always checked.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == ScopeType.HTTP and (
            _bearer(scope) or (scope["path"].startswith("/api/") and cookie(scope, SESSION_COOKIE) is None)
        ):
            await self.app(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def cookie(scope: Scope, name: str) -> str | None:
    """One cookie's value from the raw headers (before Litestar builds a request)."""
    for header, value in scope.get("headers", []):
        if header == b"cookie":
            for part in value.decode("latin-1").split(";"):
                key, _, val = part.strip().partition("=")
                if key == name and val:
                    return val
    return None


def _bearer(scope: Scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and token:
                return token.strip()
    return None


def bearer_token(scope: Any) -> str | None:
    return _bearer(scope)
