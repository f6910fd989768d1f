"""Concurrent applications share group commits: every decision is persisted with
its snapshot and audit entry, answered only once stored, replayable, and the
audit chain still verifies; a failing application fails alone."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
import pytest

from tests.integration.credit.builders import published, ruleset_body
from tests.integration.credit.conftest import Borrower, Officers, make_borrower

API = "/api/credit/applications"


def _body(borrower: Borrower, product: str, amount: int) -> dict[str, Any]:
    return {
        "taxpayerPk": borrower.taxpayer_pk,
        "amount": f"{amount}.00",
        "termMonths": 12,
        "purpose": "working_capital",
        "product": product,
    }


async def test_concurrent_applications_are_batched_persisted_and_replayable(
    client: Any, officers: Officers, product: str, provider: Any, audit_since: Any
) -> None:
    from app import audit
    from credit import decisions, replay
    from credit.tables import Decision, LoanApplication

    version_id = await published(ruleset_body(product), officers.author, officers.reviewer)
    borrowers = [await make_borrower() for _ in range(4)]
    for b in borrowers:  # a first application stores the taxpayer's record (its own transaction)
        r = await client.post(API + "/", json=_body(b, product, 100_000), headers=b.headers)
        assert r.status_code == 201, r.text
    writer = decisions._group_commit()
    batches_before = writer.batches

    n = 24
    responses = await asyncio.gather(
        *(
            client.post(
                API + "/", json=_body(borrowers[i % 4], product, 100_000 + i * 1000), headers=borrowers[i % 4].headers
            )
            for i in range(n)
        )
    )
    assert [r.status_code for r in responses] == [201] * n, [r.text for r in responses if r.status_code != 201]
    assert writer.batches - batches_before < n  # shared transactions, not one each

    outs = [r.json() for r in responses]
    assert len({o["id"] for o in outs}) == n
    for i, out in enumerate(outs):
        b = borrowers[i % 4]
        app_row = await LoanApplication.select().where(LoanApplication.id == out["id"]).first()
        assert app_row is not None
        assert (app_row["state"], app_row["customer"], app_row["taxpayer"]) == (
            "decided",
            b.person.customer_id,
            b.taxpayer_pk,
        )
        assert app_row["amount_fen"] == (100_000 + i * 1000) * 100
        stored = await Decision.select().where(Decision.id == out["decision"]["id"]).first()
        assert stored is not None
        assert stored["application"] == out["id"]
        assert stored["ruleset"] == version_id
        assert stored["outcome"] == out["decision"]["outcome"]
        assert stored["features"]
        assert stored["reasons"] is not None
        check = await replay.replay(out["decision"]["id"])
        assert check.identical

        # the response reads the same when fetched back
        again = await client.get(f"{API}/{out['id']}", headers=b.headers)
        assert again.json()["decision"] == out["decision"]

    decided = [e for e in await audit_since() if e["action"] == "credit.application_decided"]
    by_application = {int(e["entity_id"]): e for e in decided}
    for i, out in enumerate(outs):
        entry = by_application[out["id"]]
        assert entry["actor_id"] == borrowers[i % 4].person.account_id  # the submitting request's actor
        assert entry["actor_role"] == "customer"
        assert responses[i].headers["x-request-id"] == entry["request_id"]
    assert (await audit.verify()).ok


async def test_a_failing_application_fails_alone(
    client: Any, officers: Officers, product: str, provider: Any, audit_since: Any
) -> None:
    """A batch whose transaction fails (here: a taxpayer row gone, a foreign-key
    violation) is retried item by item; only the culprit's caller gets the error."""
    from app import audit, context
    from credit import decisions
    from credit.schemas import ApplicationCreate
    from credit.tables import Decision

    await published(ruleset_body(product), officers.author, officers.reviewer)
    borrower = await make_borrower()
    r = await client.post(API + "/", json=_body(borrower, product, 100_000), headers=borrower.headers)
    assert r.status_code == 201, r.text
    principal = await _principal(borrower)
    data = msgspec.convert(_body(borrower, product, 200_000), ApplicationCreate)
    good = await decisions.gather(principal, data)
    bad = decisions.Gathered(None, good.terms, {**good.taxpayer, "id": 2_000_000_000}, good.setup, good.result)
    item = decisions._NewDecision
    writer = decisions._group_commit()
    now = decisions._now()
    results = await asyncio.gather(
        *(writer.submit(item(g, good.result, now, context.current())) for g in (good, bad, good)),  # type: ignore[arg-type]
        return_exceptions=True,
    )
    assert not isinstance(results[0], BaseException)
    assert not isinstance(results[2], BaseException)
    assert isinstance(results[1], Exception)
    for out in (results[0], results[2]):
        assert out.decision is not None  # type: ignore[union-attr]
        assert await Decision.exists().where(Decision.id == out.decision.id)  # type: ignore[union-attr]
    assert len([e for e in await audit_since() if e["action"] == "credit.application_decided"]) == 3
    assert (await audit.verify()).ok


async def _principal(borrower: Borrower) -> Any:
    from app.security import TokenKind, resolve_token

    token = borrower.headers["authorization"].removeprefix("Bearer ")
    principal = await resolve_token(token, TokenKind.api)
    assert principal is not None
    return principal


@pytest.fixture(autouse=True)
def _no_leftover_writers() -> Any:
    yield
    # each test has its own event loop: its writer must have finished
    from credit import decisions

    for writer in list(decisions._writers.values()):
        assert writer._task is None


async def test_concurrent_applicant_reads_each_get_their_own(product: str, officers: Officers, provider: Any) -> None:
    """The applicant checks of concurrent requests share queries (PostgreSQL) and each
    request gets its own taxpayer, consent and set-up; an unknown taxpayer gets None."""
    from datetime import date

    from credit import repository

    version_id = await published(ruleset_body(product), officers.author, officers.reviewer)
    first, second = await make_borrower(), await make_borrower(consent=False)
    today = date.today()
    asks = [first.taxpayer_pk, 2_000_000_000, second.taxpayer_pk, first.taxpayer_pk] * 4
    found = await asyncio.gather(*(repository.applicant(pk, product, today) for pk in asks))
    for pk, got in zip(asks, found, strict=True):
        if pk == 2_000_000_000:
            assert got is None
            continue
        assert got is not None
        assert got.taxpayer["id"] == pk
        assert got.setup["champion_id"] == version_id
        assert (got.consent is not None) == (pk == first.taxpayer_pk)
    other = await repository.applicant(first.taxpayer_pk, "no_such_product", today)
    assert other is not None
    assert other.setup["champion_id"] is None
    if repository.is_direct():
        reader = repository._readers[asyncio.get_running_loop()]
        assert reader.batches < len(asks)  # shared round trips
