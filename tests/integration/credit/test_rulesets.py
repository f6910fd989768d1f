"""Ruleset versions over HTTP: validation at the cell, the four-eyes lifecycle,
one published version per product, roll-back, seeding and backtests."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from tests.helpers import bearer, make_customer, make_staff
from tests.integration.credit.builders import approve_all, published, ruleset_body
from tests.integration.credit.conftest import Officers

API = "/api/credit/rulesets"


async def _draft(client: Any, headers: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
    r = await client.post(API + "/", content=json.dumps(body), headers={**headers, "content-type": "application/json"})
    assert r.status_code == 201, r.text
    return dict(r.json())


async def _put(client: Any, headers: dict[str, str], version_id: int, body: dict[str, Any]) -> Any:
    return await client.put(
        f"{API}/{version_id}", content=json.dumps(body), headers={**headers, "content-type": "application/json"}
    )


async def _published_of(product: str) -> list[str]:
    from credit.tables import RulesetVersion

    rows = await RulesetVersion.select(RulesetVersion.version).where(
        (RulesetVersion.product == product) & (RulesetVersion.status == "published")
    )
    return [r["version"] for r in rows]


async def test_four_eyes_lifecycle_with_errors_at_the_cell(
    client: Any, officers: Officers, product: str, audit_since: Any
) -> None:
    body = ruleset_body(product)
    draft = await _draft(client, officers.author_headers, body)
    assert draft["status"] == "draft"
    assert draft["author"]["id"] == officers.author.account_id

    broken = copy.deepcopy(body)
    broken["rows"][3]["conditions"][0]["value"] = "lots"  # tax_paid_12m_fen < "lots"
    broken["rows"][5]["outcome"] = "maybe"
    broken["defaults"]["limit"] = "min(k_b * tax_paid_12m_fen"
    r = await _put(client, officers.author_headers, draft["id"], broken)
    assert r.status_code == 422
    assert r.json()["error"] == "ruleset_invalid"
    paths = {f["path"] for f in r.json()["fields"]}
    assert {"rows[3].conditions[0].value", "rows[5].outcome", "defaults.limit"} <= paths

    body["description"] = "Tax loan, reviewed"
    assert (await _put(client, officers.reviewer_headers, draft["id"], body)).json()["error"] == "not_author"
    assert (await _put(client, officers.author_headers, draft["id"], body)).status_code == 200

    submitted = await client.post(f"{API}/{draft['id']}/submit", headers=officers.author_headers)
    assert submitted.json()["status"] == "submitted"
    frozen = await _put(client, officers.author_headers, draft["id"], body)
    assert (frozen.status_code, frozen.json()["error"]) == (409, "ruleset_state")

    own = await client.post(f"{API}/{draft['id']}/approve", headers=officers.author_headers)
    assert (own.status_code, own.json()["error"]) == (403, "four_eyes")
    early = await client.post(f"{API}/{draft['id']}/publish", headers=officers.reviewer_headers)
    assert (early.status_code, early.json()["error"]) == (409, "ruleset_state")

    approved = await client.post(f"{API}/{draft['id']}/approve", headers=officers.reviewer_headers)
    assert approved.status_code == 200
    assert approved.json()["approvedBy"]["id"] == officers.reviewer.account_id
    live = await client.post(f"{API}/{draft['id']}/publish", headers=officers.reviewer_headers)
    assert live.json()["status"] == "published"
    assert await _published_of(product) == ["1"]

    actions = [e["action"] for e in await audit_since()]
    for step in ("drafted", "edited", "submitted", "approved", "published"):
        assert f"credit.ruleset_{step}" in actions


async def test_structural_errors_name_their_path_and_versions_are_unique(
    client: Any, officers: Officers, product: str
) -> None:
    body = ruleset_body(product)
    body["maxLimitFen"] = "three million"
    r = await client.post(
        API + "/", content=json.dumps(body), headers={**officers.author_headers, "content-type": "application/json"}
    )
    assert r.status_code == 422
    assert r.json()["fields"][0]["path"] == "maxLimitFen"
    r = await client.post(API + "/", content=b"{not json", headers=officers.author_headers)
    assert r.json()["error"] == "ruleset_invalid"

    await _draft(client, officers.author_headers, ruleset_body(product))
    r = await client.post(
        API + "/",
        content=json.dumps(ruleset_body(product)),
        headers={**officers.author_headers, "content-type": "application/json"},
    )
    assert (r.status_code, r.json()["error"]) == (409, "version_taken")


async def test_one_published_version_roll_back_and_the_database_guard(
    client: Any, officers: Officers, product: str, backend: str
) -> None:
    from app.db import transaction
    from credit import rulesets
    from credit.tables import RulesetVersion

    first = await published(ruleset_body(product, "1"), officers.author, officers.reviewer)
    second = await published(ruleset_body(product, "2"), officers.reviewer, officers.author)
    assert await _published_of(product) == ["2"]
    row = await RulesetVersion.objects().where(RulesetVersion.id == first).first()
    assert row is not None
    assert row.status == "retired"
    assert row.retired_at is not None

    back = await client.post(f"{API}/{first}/publish", headers=officers.author_headers)
    assert back.json()["status"] == "published"
    assert await _published_of(product) == ["1"]
    assert (await rulesets.get_version(second)).status == "retired"

    listed = await client.get(API + "/", params={"product": product}, headers=officers.author_headers)
    assert [(v["version"], v["status"]) for v in listed.json()] == [("2", "retired"), ("1", "published")]

    # the partial unique index refuses a second published row, whatever the code does
    import sqlite3

    import asyncpg

    with pytest.raises((sqlite3.IntegrityError, asyncpg.UniqueViolationError)):
        async with transaction():
            await RulesetVersion.update({RulesetVersion.status: "published"}).where(RulesetVersion.id == second)
    assert await _published_of(product) == ["1"]


async def test_copy_reject_and_return_to_author(client: Any, officers: Officers, product: str) -> None:
    source = await published(ruleset_body(product), officers.author, officers.reviewer)
    r = await client.post(f"{API}/{source}/copy", headers=officers.reviewer_headers)
    assert r.status_code == 201
    draft = r.json()
    assert (draft["version"], draft["status"], draft["basedOn"]) == ("2", "draft", source)
    assert draft["author"]["id"] == officers.reviewer.account_id
    await client.post(f"{API}/{draft['id']}/submit", headers=officers.reviewer_headers)
    r = await client.post(
        f"{API}/{draft['id']}/reject", json={"note": "the M limit is too high"}, headers=officers.author_headers
    )
    assert r.json()["status"] == "draft"
    assert r.json()["reviewNote"] == "the M limit is too high"
    assert r.json()["submittedBy"] is None


async def test_risk_officers_only(client: Any, product: str) -> None:
    manager = await make_staff("account_manager")
    customer = await make_customer()
    for person in (manager, customer):
        r = await client.get(API + "/", headers=await bearer(person.account_id))
        assert r.status_code == 403


async def test_seeding_publishes_the_committed_ruleset_once() -> None:
    from app.db import transaction
    from credit import rulesets

    async with transaction():
        first = await rulesets.seed_published_ruleset()
    async with transaction():
        again = await rulesets.seed_published_ruleset()
    assert first.id == again.id
    assert (first.product, first.version) == ("tax_loan", "1")
    published_now = await rulesets.published_version("tax_loan")
    assert published_now is not None


async def test_backtest_compares_with_the_published_version(
    client: Any, officers: Officers, product: str, audit_since: Any
) -> None:
    from credit.backtests import HISTORY_ROWS

    await published(ruleset_body(product), officers.author, officers.reviewer)
    draft = await _draft(client, officers.author_headers, approve_all(product, "2"))
    r = await client.post(f"{API}/{draft['id']}/backtest", headers=officers.author_headers)
    assert r.status_code == 200, r.text
    out = r.json()
    report = out["report"]
    assert out["applications"] == report["applications"] == HISTORY_ROWS
    assert report["challenger"]["ruleset"] == f"{product} 2"
    assert report["champion"]["ruleset"] == f"{product} 1"
    # approving everyone: every application approved, and more bads than the published table lets in
    assert report["challenger"]["overall"]["approval_rate"] == 1.0
    assert report["challenger"]["overall"]["bad_rate"] > report["champion"]["overall"]["bad_rate"]
    assert set(report["challenger"]["by_grade"]) == {"A", "B", "M", "C", "D"}
    assert report["swap"]["swap_out"]["applications"] == 0
    assert report["swap"]["swap_in"]["applications"] > 0
    cells = sum(c["applications"] for c in report["swap"]["matrix"])
    assert cells == HISTORY_ROWS
    assert "credit.backtest_run" in [e["action"] for e in await audit_since()]

    # the approver sees the backtest of the table as submitted, never one of an earlier edit
    from credit.backtests import latest_backtest

    kept = await latest_backtest(draft["id"])
    assert kept is not None
    assert kept.id == out["id"]
    edited = approve_all(product, "2")
    edited["defaults"]["priceTier"] = "T3"
    assert (await _put(client, officers.author_headers, draft["id"], edited)).status_code == 200
    assert await latest_backtest(draft["id"]) is None


async def test_only_an_unsubmitted_draft_is_deleted_by_its_author(
    client: Any, officers: Officers, product: str, audit_since: Any
) -> None:
    draft = await _draft(client, officers.author_headers, ruleset_body(product))
    url = f"{API}/{draft['id']}"
    assert (await client.delete(url, headers=officers.reviewer_headers)).json()["error"] == "not_author"
    assert (await client.delete(url, headers=officers.author_headers)).status_code == 204
    assert (await client.get(url, headers=officers.author_headers)).status_code == 404
    assert "credit.ruleset_deleted" in [e["action"] for e in await audit_since()]

    kept = await _draft(client, officers.author_headers, ruleset_body(product, "2"))
    await client.post(f"{API}/{kept['id']}/submit", headers=officers.author_headers)
    refused = await client.delete(f"{API}/{kept['id']}", headers=officers.author_headers)
    assert (refused.status_code, refused.json()["error"]) == (409, "ruleset_state")
    await client.post(f"{API}/{kept['id']}/reject", json={"note": "again"}, headers=officers.reviewer_headers)
    returned = await client.delete(f"{API}/{kept['id']}", headers=officers.author_headers)
    assert (returned.status_code, returned.json()["error"]) == (409, "ruleset_state")
