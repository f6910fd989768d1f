"""Logins: bearer tokens for the API, session cookie with CSRF for the pages."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from app.security import TokenKind, issue_token
from app.tables import AuthToken
from tests.helpers import PASSWORD, bearer, make_customer, make_staff


async def test_token_login_and_me(client: Any) -> None:
    me = await make_customer()
    r = await client.post("/api/auth/tokens", json={"email": me.email.upper(), "password": PASSWORD})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["tokenType"] == "Bearer"
    assert body["account"]["customerId"] == me.customer_id
    r = await client.get("/api/auth/me", headers={"authorization": f"Bearer {body['token']}"})
    assert r.status_code == 200
    assert r.json()["role"] == "customer"


async def test_tokens_are_stored_hashed(client: Any) -> None:
    me = await make_customer()
    token = (await client.post("/api/auth/tokens", json={"email": me.email, "password": PASSWORD})).json()["token"]
    assert not await AuthToken.exists().where(AuthToken.token_hash == token)


async def test_wrong_password_and_unknown_email_look_the_same(client: Any) -> None:
    me = await make_customer()
    wrong = await client.post("/api/auth/tokens", json={"email": me.email, "password": "not the password"})
    unknown = await client.post("/api/auth/tokens", json={"email": "nobody@example.cn", "password": PASSWORD})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json()["error"] == unknown.json()["error"] == "bad_credentials"


async def test_revoked_token_stops_working(client: Any) -> None:
    me = await make_customer()
    headers = await bearer(me.account_id)
    assert (await client.delete("/api/auth/tokens/current", headers=headers)).status_code == 204
    r = await client.get("/api/auth/me", headers=headers)
    assert r.status_code == 401
    assert r.json()["error"] == "unauthorized"


async def test_expired_token_is_refused(client: Any) -> None:
    me = await make_customer()
    token, _ = await issue_token(me.account_id, TokenKind.api, timedelta(minutes=5))
    await AuthToken.update({AuthToken.expires_at: datetime.now(UTC) - timedelta(seconds=1)}).where(
        AuthToken.account == me.account_id
    )
    assert (await client.get("/api/auth/me", headers={"authorization": f"Bearer {token}"})).status_code == 401


async def test_session_token_is_not_a_bearer_token(client: Any) -> None:
    me = await make_customer()
    token, _ = await issue_token(me.account_id, TokenKind.session, timedelta(minutes=5))
    assert (await client.get("/api/auth/me", headers={"authorization": f"Bearer {token}"})).status_code == 401


async def test_deactivated_account_loses_access(client: Any) -> None:
    from app.tables import Account

    me = await make_staff("account_manager")
    headers = await bearer(me.account_id)
    await Account.update({Account.is_active: False}).where(Account.id == me.account_id)
    assert (await client.get("/api/auth/me", headers=headers)).status_code == 401


def _csrf(html: str) -> str:
    found = re.search(r'name="_csrf_token" value="([^"]+)"', html)
    assert found, "login form has no CSRF token"
    return found.group(1)


async def test_page_login_sets_session_and_logout_ends_it(client: Any) -> None:
    me = await make_staff("risk_officer")
    page = await client.get("/login")
    assert page.status_code == 200
    r = await client.post(
        "/login",
        data={"email": me.email, "password": PASSWORD, "next": "/", "_csrf_token": _csrf(page.text)},
    )
    assert r.status_code == 303
    assert r.headers["location"] == "/"
    set_cookie = r.headers["set-cookie"].lower()
    assert "httponly" in set_cookie
    assert "samesite=lax" in set_cookie
    home = await client.get("/")
    assert home.status_code == 200
    assert "Risk office" in home.text
    out = await client.post("/logout", data={"_csrf_token": _csrf(home.text)})
    assert out.status_code == 303
    after = await client.get("/")
    assert after.status_code in (302, 303)
    assert after.headers["location"].startswith("/login")


async def test_page_post_without_csrf_token_is_refused(client: Any) -> None:
    me = await make_staff("admin")
    await client.get("/login")
    r = await client.post("/login", data={"email": me.email, "password": PASSWORD})
    assert r.status_code == 403
    assert r.json()["error"] == "csrf"


async def test_api_call_with_session_cookie_needs_csrf(client: Any) -> None:
    """A cookie-authenticated API write could be forged cross-site: it needs the token."""
    me = await make_customer()
    page = await client.get("/login")
    await client.post("/login", data={"email": me.email, "password": PASSWORD, "_csrf_token": _csrf(page.text)})
    r = await client.patch(f"/api/customers/{me.customer_id}", json={"phone": "13912345678"})
    assert r.status_code == 403
    token = client.cookies.get("branchless_csrf")
    r = await client.patch(
        f"/api/customers/{me.customer_id}", json={"phone": "13912345678"}, headers={"x-csrftoken": token}
    )
    assert r.status_code == 200, r.text


async def test_failed_page_login_shows_an_error(client: Any) -> None:
    page = await client.get("/login")
    r = await client.post("/login", data={"email": "x@example.cn", "password": "nope", "_csrf_token": _csrf(page.text)})
    assert r.status_code == 401
    assert "wrong" in r.text


async def test_login_never_redirects_off_site(client: Any) -> None:
    me = await make_customer()
    page = await client.get("/login")
    r = await client.post(
        "/login",
        data={"email": me.email, "password": PASSWORD, "next": "//evil.example/x", "_csrf_token": _csrf(page.text)},
    )
    assert r.status_code == 303
    assert r.headers["location"] == "/"


async def test_unauthenticated_page_redirects_to_login(client: Any) -> None:
    r = await client.get("/")
    assert r.status_code in (302, 303)
    assert r.headers["location"] == "/login?next=/"
