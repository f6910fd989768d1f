"""Who is calling and what they may do: roles, passwords, tokens, guards.

A caller is identified by a bearer token (``Authorization: Bearer ...``, JSON API)
or by the session cookie (web pages). When a bearer header is present the cookie
is ignored, which is what lets the CSRF check skip bearer calls safely.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from litestar import Request
from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from litestar.types import ASGIApp, Receive, Scope, Send

from app import context
from app.cpu import run_cpu
from app.middleware import SESSION_COOKIE, bearer_token, cookie
from app.tables import Account, AuthToken, Customer


class Role(StrEnum):
    customer = "customer"
    account_manager = "account_manager"
    risk_officer = "risk_officer"
    claims_adjuster = "claims_adjuster"
    admin = "admin"


STAFF_ROLES = frozenset(Role) - {Role.customer}


class TokenKind(StrEnum):
    session = "session"
    api = "api"


@dataclass(frozen=True)
class Principal:
    """The authenticated caller, as the handlers see it."""

    account_id: int
    role: Role
    email: str
    display_name: str
    customer_id: int | None
    token_id: int
    token_kind: TokenKind

    @property
    def is_staff(self) -> bool:
        return self.role in STAFF_ROLES


# --- passwords -------------------------------------------------------------------

_hasher = PasswordHasher()


def _hash(password: str) -> str:
    return _hasher.hash(password)


def _verify(stored: str, password: str) -> bool:
    try:
        return _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


async def hash_password(password: str) -> str:
    """argon2id, in the CPU pool: a hash costs ~50 ms of a core by design."""
    return await run_cpu(_hash, password)


async def verify_password(stored: str, password: str) -> bool:
    return await run_cpu(_verify, stored, password)


# A real hash to verify against when the account does not exist, so that a
# failed login takes as long for an unknown email as for a wrong password.
_DUMMY_HASH = _hasher.hash(secrets.token_hex(16))


async def check_login(email: str, password: str) -> Account | None:
    account = await Account.objects().where(Account.email == email.strip().lower()).first()
    if account is None or not account.is_active:
        await verify_password(_DUMMY_HASH, password)
        return None
    return account if await verify_password(account.password_hash, password) else None


# --- tokens ----------------------------------------------------------------------


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def issue_token(
    account_id: int, kind: TokenKind, ttl: timedelta, *, ip: str = "", user_agent: str = ""
) -> tuple[str, datetime]:
    """Create a login; return the secret (shown once) and its expiry."""
    token = secrets.token_urlsafe(32)
    now = datetime.now(UTC)
    expires = now + ttl
    await AuthToken.insert(
        AuthToken(
            token_hash=token_digest(token),
            account=account_id,
            kind=kind.value,
            created_at=now,
            expires_at=expires,
            ip=ip[:64],
            user_agent=user_agent[:300],
        )
    )
    return token, expires


async def revoke_token(token_id: int) -> None:
    await AuthToken.update({AuthToken.revoked_at: datetime.now(UTC)}).where(AuthToken.id == token_id)


async def resolve_token(token: str, kind: TokenKind) -> Principal | None:
    row = (
        await AuthToken.select(
            AuthToken.id,
            AuthToken.expires_at,
            AuthToken.revoked_at,
            AuthToken.account.id,
            AuthToken.account.role,
            AuthToken.account.email,
            AuthToken.account.display_name,
            AuthToken.account.is_active,
        )
        .where((AuthToken.token_hash == token_digest(token)) & (AuthToken.kind == kind.value))
        .first()
    )
    if row is None or row["revoked_at"] is not None or not row["account.is_active"]:
        return None
    expires = row["expires_at"]
    if expires.tzinfo is None:
        expires = expires.replace(tzinfo=UTC)
    if expires <= datetime.now(UTC):
        return None
    customer = await Customer.select(Customer.id).where(Customer.account == row["account.id"]).first()
    return Principal(
        account_id=row["account.id"],
        role=Role(row["account.role"]),
        email=row["account.email"],
        display_name=row["account.display_name"],
        customer_id=customer["id"] if customer else None,
        token_id=row["id"],
        token_kind=kind,
    )


def authentication_middleware(app: ASGIApp) -> ASGIApp:
    """Resolve the caller once per request into ``scope["user"]`` (or ``None``)."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            principal: Principal | None = None
            bearer = bearer_token(scope)
            if bearer:
                principal = await resolve_token(bearer, TokenKind.api)
            else:
                session = cookie(scope, SESSION_COOKIE)
                if session:
                    principal = await resolve_token(session, TokenKind.session)
            scope["user"] = principal
            scope["auth"] = principal
            if principal is not None:
                ctx = context.current()
                context.set_context(
                    context.RequestContext(ctx.request_id, ctx.ip, principal.account_id, principal.role.value)
                )
        await app(scope, receive, send)

    return middleware


# --- guards ----------------------------------------------------------------------


def may_see_customer(principal: Principal, customer_id: int | None) -> bool:
    """Ownership rule of every customer record: customers see only their own; the
    route's role guard has already decided which staff may look at all."""
    return principal.role != Role.customer or principal.customer_id == customer_id


def principal_of(connection: ASGIConnection[Any, Any, Any, Any]) -> Principal:
    user = connection.scope.get("user")
    if not isinstance(user, Principal):
        raise NotAuthorizedException("log in first")
    return user


def requires_login(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    principal_of(connection)


def requires_role(*roles: Role) -> Any:
    """A guard letting through only the given roles (after a login)."""
    allowed = frozenset(roles)

    def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        if principal_of(connection).role not in allowed:
            raise PermissionDeniedException("your role may not do this")

    guard.__name__ = "requires_" + "_or_".join(sorted(r.value for r in allowed))
    return guard


requires_staff = requires_role(*STAFF_ROLES)
requires_customer = requires_role(Role.customer)
requires_admin = requires_role(Role.admin)


async def provide_principal(request: Request[Any, Any, Any]) -> Principal:
    """Dependency: the authenticated caller (the route's guard already required one)."""
    return principal_of(request)
