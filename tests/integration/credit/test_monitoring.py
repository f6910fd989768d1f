"""Monitoring over recorded data: population stability of live applicants
against the backtest population, and the proactive relief list."""

from __future__ import annotations

from datetime import date
from typing import Any

from tests.helpers import bearer, make_customer, make_staff
from tests.integration.credit.builders import approve_all, published
from tests.integration.credit.conftest import Borrower, Officers, make_borrower


async def _apply(client: Any, borrower: Borrower, product: str) -> dict[str, Any]:
    r = await client.post(
        "/api/credit/applications/",
        json={
            "taxpayerPk": borrower.taxpayer_pk,
            "amount": "100000",
            "termMonths": 12,
            "purpose": "working_capital",
            "product": product,
        },
        headers=borrower.headers,
    )
    assert r.status_code == 201, r.text
    return dict(r.json())


async def test_psi_reports_each_feature_with_its_band(
    client: Any, officers: Officers, product: str, borrower: Borrower
) -> None:
    from credit.engine.features import FEATURE_KINDS

    await published(approve_all(product), officers.author, officers.reviewer)
    empty = await client.get("/api/credit/monitoring/psi", params={"product": product}, headers=officers.author_headers)
    assert (empty.json()["liveApplications"], empty.json()["features"]) == (0, [])

    for _ in range(6):  # one business applying again and again: a population of one
        await _apply(client, borrower, product)
    r = await client.get(
        "/api/credit/monitoring/psi", params={"product": product, "days": 7}, headers=officers.author_headers
    )
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["liveApplications"] == 6
    assert out["reliable"] is False
    assert out["baselineApplications"] > 100_000
    assert [f["feature"] for f in out["features"]] == list(FEATURE_KINDS)
    for f in out["features"]:
        expected = "stable" if f["psi"] < 0.10 else "watch" if f["psi"] <= 0.25 else "act"
        assert f["band"] == expected
        assert abs(sum(b["live_share"] for b in f["bins"]) - 1.0) < 1e-6
    by_name = {f["feature"]: f for f in out["features"]}
    assert by_name["industry"]["band"] == "act"  # every live applicant in one industry

    manager = await make_staff("account_manager")
    assert (await client.get("/api/credit/monitoring/psi", headers=await bearer(manager.account_id))).status_code == 403


async def test_relief_flags_borrowers_whose_sales_fell(
    client: Any, officers: Officers, product: str, audit_since: Any
) -> None:
    from credit.engine.records import month_index, period_of
    from credit.tables import TaxFiling

    await published(approve_all(product), officers.author, officers.reviewer)
    falling, steady, never_borrowed = await make_borrower(), await make_borrower(), await make_borrower()
    for b in (falling, steady):
        assert (await _apply(client, b, product))["decision"]["outcome"] == "approve"
    # the stored filings now say: the first borrower's last three months at a fifth of a year before,
    # the second one's sales steady
    latest = month_index(f"{date.today():%Y-%m}") - 1
    for b, recent in ((falling, 200_000_00), (steady, 1_000_000_00)):
        await TaxFiling.delete().where(TaxFiling.taxpayer == b.taxpayer_pk)
        await TaxFiling.insert(
            *(
                TaxFiling(
                    taxpayer=b.taxpayer_pk,
                    period=period_of(latest - m),
                    vat_sales_fen=recent if m < 3 else 1_000_000_00,
                    vat_paid_fen=0,
                    income_tax_fen=0,
                    filed_on_time=True,
                )
                for m in range(24)
            )
        )

    manager = await bearer((await make_staff("account_manager")).account_id)
    r = await client.get("/api/credit/relief", params={"dropShare": 0.5, "months": 3}, headers=manager)
    assert r.status_code == 200, r.text
    flagged = {c["taxpayerPk"]: c for c in r.json()}
    assert falling.taxpayer_pk in flagged
    assert steady.taxpayer_pk not in flagged
    assert never_borrowed.taxpayer_pk not in flagged
    mine = flagged[falling.taxpayer_pk]
    assert abs(mine["salesChange"] + 0.8) < 0.01
    assert mine["customerId"] == falling.person.customer_id
    assert "credit.relief_listed" in [e["action"] for e in await audit_since()]

    customer = await make_customer()
    assert (await client.get("/api/credit/relief", headers=await bearer(customer.account_id))).status_code == 403
    bad = await client.get("/api/credit/relief", params={"dropShare": 2}, headers=manager)
    assert bad.status_code == 422
