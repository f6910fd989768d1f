"""The decision API: an application decided in the request that submits it, on
the taxpayer's record fetched under a signed consent; persisted with its
snapshot and replayable; an outage waits and is retried, never declined."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.helpers import bearer, make_customer, make_staff
from tests.integration.credit.builders import published, ruleset_body
from tests.integration.credit.conftest import Borrower, Officers, make_borrower

API = "/api/credit/applications"


def _body(borrower: Borrower, product: str, **over: Any) -> dict[str, Any]:
    body = {
        "taxpayerPk": borrower.taxpayer_pk,
        "amount": "300000.00",
        "termMonths": 12,
        "purpose": "working_capital",
        "product": product,
    }
    body.update(over)
    return body


async def _taxpayer_id(pk: int) -> str:
    from credit.tables import Taxpayer

    row = await Taxpayer.select(Taxpayer.taxpayer_id).where(Taxpayer.id == pk).first()
    assert row is not None
    return str(row["taxpayer_id"])


async def test_decided_in_the_request_persisted_and_replayed_identically(
    client: Any, officers: Officers, product: str, borrower: Borrower, provider: Any
) -> None:
    from credit.engine.features import Features, features_of
    from credit.engine.rules import compile_ruleset, decide, ruleset_from_json
    from credit.tables import Decision, LoanApplication, TaxFiling, Taxpayer

    body = ruleset_body(product)
    version_id = await published(body, officers.author, officers.reviewer)
    r = await client.post(API + "/", json=_body(borrower, product), headers=borrower.headers)
    assert r.status_code == 201, r.text
    out = r.json()
    assert out["state"] == "decided"
    assert out["amount"] == "300000.00"
    decision = out["decision"]
    assert decision["rulesetId"] == version_id
    assert decision["rulesetVersion"] == "1"
    assert decision["arm"] == "champion"

    # the same answer the engine gives on the sandbox's record of this taxpayer
    record = provider.record(await _taxpayer_id(borrower.taxpayer_pk))
    import json

    expected = decide(compile_ruleset(ruleset_from_json(json.dumps(body))), features_of(record))
    assert decision["outcome"] == expected.outcome
    assert decision["reasons"] == expected.reasons
    assert decision["priceTier"] == expected.price_tier
    assert round(float(decision["limit"]) * 100) == expected.limit_fen

    stored = await Decision.select().where(Decision.id == decision["id"]).first()
    assert stored is not None
    assert stored["application"] == out["id"]
    assert stored["ruleset"] == version_id
    import msgspec

    assert msgspec.json.decode(stored["features"], type=Features) == features_of(record)
    application = await LoanApplication.select().where(LoanApplication.id == out["id"]).first()
    assert application is not None
    assert (application["state"], application["amount_fen"], application["attempts"]) == ("decided", 30_000_000, 1)

    # the authority's record now backs the stored taxpayer and filings; the same record rewrites nothing
    taxpayer = await Taxpayer.select().where(Taxpayer.id == borrower.taxpayer_pk).first()
    assert taxpayer is not None
    assert (taxpayer["name"], taxpayer["industry"], taxpayer["record_as_of"]) == (
        record.name,
        record.industry,
        record.as_of,
    )
    filings = await TaxFiling.select(TaxFiling.id, TaxFiling.period).where(TaxFiling.taxpayer == borrower.taxpayer_pk)
    assert sorted(f["period"] for f in filings) == [f.period for f in record.filings]
    again = await client.post(API + "/", json=_body(borrower, product), headers=borrower.headers)
    assert again.status_code == 201
    after = await TaxFiling.select(TaxFiling.id).where(TaxFiling.taxpayer == borrower.taxpayer_pk)
    assert {f["id"] for f in after} == {f["id"] for f in filings}

    risk = await bearer(officers.reviewer.account_id)
    replay = await client.post(f"/api/credit/decisions/{decision['id']}/replay", headers=risk)
    assert replay.status_code == 200, replay.text
    assert replay.json()["identical"] is True
    assert replay.json()["differences"] == []
    assert replay.json()["replayed"] == replay.json()["stored"]


async def test_readers_of_an_application(
    client: Any, officers: Officers, product: str, borrower: Borrower, audit_since: Any
) -> None:
    await published(ruleset_body(product), officers.author, officers.reviewer)
    created = (await client.post(API + "/", json=_body(borrower, product), headers=borrower.headers)).json()
    url = f"{API}/{created['id']}"
    assert (await client.get(url, headers=borrower.headers)).json()["decision"] == created["decision"]
    stranger = await make_customer()
    assert (await client.get(url, headers=await bearer(stranger.account_id))).status_code == 404
    manager = await make_staff("account_manager")
    seen = await client.get(url, headers=await bearer(manager.account_id))
    assert seen.status_code == 200
    assert "credit.application_viewed" in [e["action"] for e in await audit_since()]
    adjuster = await make_staff("claims_adjuster")
    assert (await client.get(url, headers=await bearer(adjuster.account_id))).status_code == 403
    assert (await client.get(f"{API}/999999999", headers=borrower.headers)).status_code == 404
    replay = await client.post(f"/api/credit/decisions/{created['decision']['id']}/replay", headers=borrower.headers)
    assert replay.status_code == 403


async def test_without_a_signed_consent_nothing_is_fetched(
    client: Any, officers: Officers, product: str, provider: Any
) -> None:
    from app.db import transaction
    from credit.consent import request_consent
    from credit.tables import LoanApplication
    from tests.integration.credit.builders import customer_principal

    await published(ruleset_body(product), officers.author, officers.reviewer)
    borrower = await make_borrower(consent=False)
    r = await client.post(API + "/", json=_body(borrower, product), headers=borrower.headers)
    assert (r.status_code, r.json()["error"]) == (403, "tax_consent_missing")
    async with transaction():  # requested and signed by the customer only: not in force yet
        await request_consent(customer_principal(borrower.person), borrower.taxpayer_pk, 12)
    r = await client.post(API + "/", json=_body(borrower, product), headers=borrower.headers)
    assert (r.status_code, r.json()["error"]) == (403, "tax_consent_missing")
    assert not await LoanApplication.exists().where(LoanApplication.taxpayer == borrower.taxpayer_pk)


async def test_another_customers_taxpayer_is_not_found(
    client: Any, officers: Officers, product: str, borrower: Borrower
) -> None:
    await published(ruleset_body(product), officers.author, officers.reviewer)
    other = await make_borrower()
    r = await client.post(API + "/", json=_body(other, product), headers=borrower.headers)
    assert (r.status_code, r.json()["error"]) == (404, "taxpayer_not_found")
    staff = await bearer((await make_staff("risk_officer")).account_id)
    assert (await client.post(API + "/", json=_body(borrower, product), headers=staff)).status_code == 403


@pytest.mark.parametrize(
    ("over", "path"),
    [
        ({"amount": "12.345"}, "$.amount"),
        ({"amount": "-5"}, "$.amount"),
        ({"amount": "500"}, "$.amount"),
        ({"amount": "NaN"}, "$.amount"),
        ({"amount": "lots"}, "$.amount"),
        ({"termMonths": 0}, "$.termMonths"),
        ({"termMonths": 120}, "$.termMonths"),
        ({"purpose": "holiday"}, "$.purpose"),
        ({"product": "Tax Loan"}, "$.product"),
    ],
)
async def test_bad_input_is_422_at_its_field(
    client: Any, borrower: Borrower, product: str, over: dict[str, Any], path: str
) -> None:
    r = await client.post(API + "/", json={**_body(borrower, product), **over}, headers=borrower.headers)
    assert r.status_code == 422, r.text
    assert [f["path"] for f in r.json()["fields"]] == [path]


async def test_a_product_without_a_published_version_decides_nothing(client: Any, borrower: Borrower) -> None:
    r = await client.post(API + "/", json=_body(borrower, "nothing_published"), headers=borrower.headers)
    assert (r.status_code, r.json()["error"]) == (409, "no_published_ruleset")


async def test_gateway_outage_waits_and_the_sweep_decides_it(
    client: Any, officers: Officers, product: str, borrower: Borrower, provider: Any, audit_since: Any
) -> None:
    from credit import jobs
    from credit.tables import Decision, LoanApplication

    await published(ruleset_body(product), officers.author, officers.reviewer)
    taxpayer_id = await _taxpayer_id(borrower.taxpayer_pk)
    provider.unavailable = frozenset({taxpayer_id})
    r = await client.post(API + "/", json=_body(borrower, product), headers=borrower.headers)
    assert r.status_code == 202, r.text
    out = r.json()
    assert (out["state"], out["reason"], out["decision"]) == ("data_pending", "tax_data_unavailable", None)
    assert out["retryAt"] is not None
    assert not await Decision.exists().where(Decision.application == out["id"])

    # not due yet: the sweep leaves it alone
    assert {"application_id": out["id"]} not in await jobs.due_applications()
    await LoanApplication.update({LoanApplication.next_attempt_at: datetime.now(UTC) - timedelta(seconds=1)}).where(
        LoanApplication.id == out["id"]
    )
    # still down: another attempt, still pending, later retry
    assert {"application_id": out["id"]} in await jobs.due_applications()
    await jobs.retry_pending({"application_id": out["id"]})
    row = await LoanApplication.select().where(LoanApplication.id == out["id"]).first()
    assert row is not None
    assert (row["state"], row["attempts"]) == ("data_pending", 2)

    provider.unavailable = frozenset()
    await LoanApplication.update({LoanApplication.next_attempt_at: datetime.now(UTC) - timedelta(seconds=1)}).where(
        LoanApplication.id == out["id"]
    )
    for payload in await jobs.due_applications():
        await jobs.retry_pending(payload)
    done = await client.get(f"{API}/{out['id']}", headers=borrower.headers)
    assert done.json()["state"] == "decided"
    assert done.json()["decision"]["outcome"] in ("approve", "refer", "decline")
    assert done.json()["retryAt"] is None
    await jobs.retry_pending({"application_id": out["id"]})  # a late duplicate job changes nothing
    assert await Decision.count().where(Decision.application == out["id"]) == 1
    actions = [e["action"] for e in await audit_since()]
    assert actions.count("credit.application_pending") == 2
    assert "credit.application_decided" in actions


async def test_unknown_to_the_authority_closes_the_application(
    client: Any, officers: Officers, product: str, borrower: Borrower, provider: Any
) -> None:
    await published(ruleset_body(product), officers.author, officers.reviewer)
    provider.unknown = frozenset({await _taxpayer_id(borrower.taxpayer_pk)})
    r = await client.post(API + "/", json=_body(borrower, product), headers=borrower.headers)
    assert r.status_code == 201
    assert (r.json()["state"], r.json()["reason"], r.json()["decision"]) == ("closed", "taxpayer_not_found", None)
