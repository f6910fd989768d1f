"""Resolved tokens are cached per process: a local revocation takes effect at once,
one made elsewhere (another process) within the cache's TTL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.helpers import make_customer


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def cache(monkeypatch: pytest.MonkeyPatch, clock: Clock) -> Any:
    """A fresh cache on a clock the test moves, in place of the process's."""
    from app import security

    fresh = security.TokenCache(ttl=5, clock=clock)
    monkeypatch.setattr(security, "TOKEN_CACHE", fresh)
    return fresh


async def test_resolved_once_then_from_the_cache_and_logout_revokes_at_once(cache: Any, uid: str) -> None:
    from app.security import TokenKind, issue_token, resolve_token, revoke_token

    person = await make_customer("缓存")
    token, _ = await issue_token(person.account_id, TokenKind.api, timedelta(minutes=5))
    principal = await resolve_token(token, TokenKind.api)
    assert principal is not None
    assert principal.account_id == person.account_id
    assert principal.customer_id == person.customer_id  # one query still finds the customer record
    assert len(cache) == 1
    assert await resolve_token(token, TokenKind.api) == principal
    assert await resolve_token(token, TokenKind.session) is None  # an API token is no session

    await revoke_token(principal.token_id)
    assert len(cache) == 0
    assert await resolve_token(token, TokenKind.api) is None


async def test_a_revocation_elsewhere_is_seen_within_the_ttl(cache: Any, clock: Clock) -> None:
    from app.security import TokenKind, issue_token, resolve_token
    from app.tables import AuthToken

    person = await make_customer("缓存")
    token, _ = await issue_token(person.account_id, TokenKind.api, timedelta(minutes=5))
    principal = await resolve_token(token, TokenKind.api)
    assert principal is not None
    # another process revokes it: this one does not know yet
    await AuthToken.update({AuthToken.revoked_at: datetime.now(UTC)}).where(AuthToken.id == principal.token_id)
    clock.now += 4
    assert await resolve_token(token, TokenKind.api) == principal
    clock.now += 1.5  # past the TTL: the database answers again
    assert await resolve_token(token, TokenKind.api) is None


async def test_unknown_and_expired_tokens_are_not_cached(cache: Any) -> None:
    from app.security import TokenKind, issue_token, resolve_token

    assert await resolve_token("no-such-token", TokenKind.api) is None
    person = await make_customer("缓存")
    token, _ = await issue_token(person.account_id, TokenKind.api, timedelta(seconds=-1))
    assert await resolve_token(token, TokenKind.api) is None
    assert len(cache) == 0


async def test_logout_through_the_api_revokes_at_once(client: Any, cache: Any) -> None:
    from tests.helpers import bearer

    person = await make_customer("缓存")
    headers = await bearer(person.account_id)
    assert (await client.get("/api/auth/me", headers=headers)).status_code == 200
    assert (await client.delete("/api/auth/tokens/current", headers=headers)).status_code == 204
    assert (await client.get("/api/auth/me", headers=headers)).status_code == 401
