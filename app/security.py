"""Who is calling and what they may do: roles, passwords, tokens, guards.

A caller is identified by a bearer token (``Authorization: Bearer ...``, JSON API)
or by the session cookie (web pages). When a bearer header is present the cookie
is ignored, which is what lets the CSRF check skip bearer calls safely.
"""

from __future__ import annotations

import hashlib
import secrets
import time
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
from app.tables import Account, AuthToken


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
    TOKEN_CACHE.forget_token(token_id)


class TokenCache:
    """Recently resolved tokens of this process, keyed by (token digest, kind).

    Resolving a token costs a database round trip on every request; a cached
    principal is reused for at most ``ttl`` seconds (and never past the token's
    own expiry). Only successful resolutions are cached, so a new token works at
    once and a wrong one always reaches the database.

    Revocation: ``revoke_token`` forgets the token here at once, so logout takes
    effect immediately in the process that served it. Another server process
    (``serve --workers N``, other hosts) keeps accepting the revoked token until
    its entry ages out: at most ``BRANCHLESS_TOKEN_CACHE_SECONDS`` (5 s by
    default; 0 turns the cache off). The same bound applies to an account
    deactivated or a role changed behind the process's back
    (``forget_account`` drops them locally).
    """

    def __init__(self, ttl: float | None = None, max_entries: int = 10_000, clock: Any = None) -> None:
        self._ttl = ttl
        self._max = max_entries
        self._clock = clock or time.monotonic
        self._entries: dict[tuple[str, str], tuple[float, datetime, Principal]] = {}

    @property
    def ttl(self) -> float:
        if self._ttl is None:
            from app.settings import get_settings

            self._ttl = float(get_settings().token_cache_seconds)
        return self._ttl

    def get(self, digest: str, kind: TokenKind) -> Principal | None:
        found = self._entries.get((digest, kind.value))
        if found is None:
            return None
        fresh_until, expires, principal = found
        if fresh_until <= self._clock() or expires <= datetime.now(UTC):
            self._entries.pop((digest, kind.value), None)
            return None
        return principal

    def put(self, digest: str, kind: TokenKind, principal: Principal, expires: datetime) -> None:
        ttl = self.ttl
        if ttl <= 0:
            return
        if len(self._entries) >= self._max:
            self._evict()
        self._entries[(digest, kind.value)] = (self._clock() + ttl, expires, principal)

    def _evict(self) -> None:
        now = self._clock()
        for key in [k for k, (fresh_until, _, _) in self._entries.items() if fresh_until <= now]:
            del self._entries[key]
        while len(self._entries) >= self._max:  # still full: drop the oldest insertions
            del self._entries[next(iter(self._entries))]

    def forget_token(self, token_id: int) -> None:
        for key in [k for k, (_, _, p) in self._entries.items() if p.token_id == token_id]:
            del self._entries[key]

    def forget_account(self, account_id: int) -> None:
        for key in [k for k, (_, _, p) in self._entries.items() if p.account_id == account_id]:
            del self._entries[key]

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


TOKEN_CACHE = TokenCache()
"""The process's cache of resolved tokens (see ``TokenCache`` for the revocation bound)."""

# One round trip: the token, its account and the account's customer record.
_RESOLVE_SQL = (
    "SELECT t.id, t.expires_at, t.revoked_at, a.id AS account_id, a.role, a.email, a.display_name, "
    "a.is_active, c.id AS customer_id "
    "FROM auth_token t JOIN account a ON a.id = t.account LEFT JOIN customer c ON c.account = a.id "
    "WHERE t.token_hash = {} AND t.kind = {} ORDER BY c.id LIMIT 1"
)


def _aware(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


async def resolve_token(token: str, kind: TokenKind) -> Principal | None:
    digest = token_digest(token)
    cached = TOKEN_CACHE.get(digest, kind)
    if cached is not None:
        return cached
    rows = await AuthToken.raw(_RESOLVE_SQL, digest, kind.value)
    if not rows:
        return None
    row = rows[0]
    if row["revoked_at"] is not None or not row["is_active"]:
        return None
    expires = row["expires_at"]
    expires = _aware(datetime.fromisoformat(expires) if isinstance(expires, str) else expires)
    if expires <= datetime.now(UTC):
        return None
    principal = Principal(
        account_id=row["account_id"],
        role=Role(row["role"]),
        email=row["email"],
        display_name=row["display_name"],
        customer_id=row["customer_id"],
        token_id=row["id"],
        token_kind=kind,
    )
    TOKEN_CACHE.put(digest, kind, principal, expires)
    return principal


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


# Guards are coroutines: Litestar runs a plain function guard in a worker thread
# (a thread hop on every request) while these only read the scope.


async def requires_login(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    principal_of(connection)


def requires_role(*roles: Role) -> Any:
    """A guard letting through only the given roles (after a login)."""
    allowed = frozenset(roles)

    async def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
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
