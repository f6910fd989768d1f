"""The per-process cache of resolved tokens: bounded in time, size and revocation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from app.security import Principal, Role, TokenCache, TokenKind

LATER = datetime.now(UTC) + timedelta(hours=1)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _principal(token_id: int, account_id: int = 7) -> Principal:
    return Principal(account_id, Role.customer, "a@example.cn", "A", 3, token_id, TokenKind.api)


def test_an_entry_lives_for_the_ttl_only() -> None:
    clock = Clock()
    cache = TokenCache(ttl=5, clock=clock)
    cache.put("d1", TokenKind.api, _principal(1), LATER)
    assert cache.get("d1", TokenKind.api) == _principal(1)
    assert cache.get("d1", TokenKind.session) is None  # a token resolves for its own kind only
    clock.now += 4.9
    assert cache.get("d1", TokenKind.api) is not None
    clock.now += 0.2
    assert cache.get("d1", TokenKind.api) is None
    assert len(cache) == 0


def test_never_past_the_tokens_own_expiry() -> None:
    cache = TokenCache(ttl=60, clock=Clock())
    cache.put("d1", TokenKind.api, _principal(1), datetime.now(UTC) - timedelta(seconds=1))
    assert cache.get("d1", TokenKind.api) is None


def test_forgetting_a_token_or_an_account() -> None:
    cache = TokenCache(ttl=60, clock=Clock())
    cache.put("d1", TokenKind.api, _principal(1), LATER)
    cache.put("d2", TokenKind.api, _principal(2), LATER)
    cache.put("d3", TokenKind.session, _principal(3, account_id=8), LATER)
    cache.forget_token(1)
    assert cache.get("d1", TokenKind.api) is None
    assert cache.get("d2", TokenKind.api) is not None
    cache.forget_account(8)
    assert cache.get("d3", TokenKind.session) is None
    assert cache.get("d2", TokenKind.api) is not None


def test_zero_ttl_turns_it_off() -> None:
    cache = TokenCache(ttl=0, clock=Clock())
    cache.put("d1", TokenKind.api, _principal(1), LATER)
    assert cache.get("d1", TokenKind.api) is None


def test_bounded_in_size_stale_entries_go_first() -> None:
    clock = Clock()
    cache = TokenCache(ttl=5, max_entries=3, clock=clock)
    cache.put("old", TokenKind.api, _principal(1), LATER)
    clock.now += 10
    cache.put("a", TokenKind.api, _principal(2), LATER)
    cache.put("b", TokenKind.api, _principal(3), LATER)
    cache.put("c", TokenKind.api, _principal(4), LATER)  # full: the stale entry makes room
    assert len(cache) == 3
    assert all(cache.get(k, TokenKind.api) is not None for k in ("a", "b", "c"))
    cache.put("d", TokenKind.api, _principal(5), LATER)  # full of fresh ones: the oldest goes
    assert len(cache) == 3
    assert cache.get("a", TokenKind.api) is None
    assert cache.get("d", TokenKind.api) is not None
