"""The web shell: login, logout and a home page per role, server-rendered.

Domains add panels to the home pages (``HomePanel``) and the app factory
assembles them, so app/ needs no knowledge of loans, claims or KYC.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromQuery
from litestar.response import Redirect, Template

from app import audit
from app.db import transaction
from app.middleware import SESSION_COOKIE
from app.security import (
    Principal,
    Role,
    TokenKind,
    check_login,
    issue_token,
    principal_of,
    requires_login,
    revoke_token,
)
from app.settings import get_settings

ROLE_TITLES = {
    Role.customer: "My Branchless",
    Role.account_manager: "Account manager",
    Role.risk_officer: "Risk office",
    Role.claims_adjuster: "Claims desk",
    Role.admin: "Administration",
}


@dataclass(frozen=True)
class Panel:
    """A box on a home page: a title, column heads and rows of text. Without
    columns, each row is a (label, value) pair shown as a definition list."""

    title: str
    columns: list[str]
    rows: list[list[str]]
    empty: str = "Nothing here yet."
    links: list[str] = field(default_factory=list)
    """Per row, where its first cell links to (same order as ``rows``)."""


PanelLoader = Callable[[Principal], Awaitable[Panel]]


@dataclass(frozen=True)
class HomePanel:
    roles: frozenset[Role]
    load: PanelLoader


def home_panel(*roles: Role) -> Callable[[PanelLoader], HomePanel]:
    """Decorator: show the decorated loader's panel on these roles' home pages."""

    def wrap(load: PanelLoader) -> HomePanel:
        return HomePanel(frozenset(roles), load)

    return wrap


def _safe_next(target: str | None) -> str:
    """Only same-site relative paths: never redirect a login elsewhere."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/"


@dataclass
class LoginData:
    email: str = ""
    password: str = ""
    next: str = "/"


class WebController(Controller):
    include_in_schema = False

    @get("/login", operation_id="login_page")
    async def login_page(self, next: FromQuery[str] = "/") -> Template:
        return Template("login.html", context={"next": _safe_next(next), "error": None, "email": ""})

    @post("/login", operation_id="login_submit", status_code=303)
    async def login_submit(
        self,
        request: Request[Any, Any, Any],
        data: Annotated[LoginData, Body(media_type=RequestEncodingType.URL_ENCODED)],
    ) -> Response[Any]:
        account = await check_login(data.email, data.password)
        if account is None:
            return Template(
                "login.html",
                context={"next": _safe_next(data.next), "error": "Email or password is wrong.", "email": data.email},
                status_code=401,
            )
        settings = get_settings()
        async with transaction():
            token, _ = await issue_token(
                account.id,
                TokenKind.session,
                timedelta(minutes=settings.session_ttl_minutes),
                ip=request.client.host if request.client else "",
                user_agent=request.headers.get("user-agent", ""),
            )
            await audit.record("auth.login", "account", account.id, actor_id=account.id, actor_role=account.role)
        response = Redirect(_safe_next(data.next), status_code=303)
        response.set_cookie(
            SESSION_COOKIE,
            token,
            httponly=True,
            samesite="lax",
            secure=settings.secure_cookies,
            max_age=settings.session_ttl_minutes * 60,
            path="/",
        )
        return response

    @post("/logout", operation_id="logout", guards=[requires_login], status_code=303)
    async def logout(self, request: Request[Any, Any, Any]) -> Response[Any]:
        principal = principal_of(request)
        async with transaction():
            await revoke_token(principal.token_id)
            await audit.record("auth.logout", "account", principal.account_id)
        response = Redirect("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    @get("/", operation_id="home_page", guards=[requires_login])
    async def home(self, request: Request[Any, Any, Any]) -> Template:
        principal = principal_of(request)
        home_panels: list[HomePanel] = request.app.state.panels
        panels = [await p.load(principal) for p in home_panels if principal.role in p.roles]
        return Template(
            "home.html",
            context={
                "me": principal,
                "title": ROLE_TITLES[principal.role],
                "role": principal.role.value,
                "panels": panels,
            },
        )
