"""Champion/challenger on live applications: the share, shadow and split modes,
what each decision records, replay of both sides, and the comparison report."""

from __future__ import annotations

from typing import Any

import msgspec

from tests.integration.credit.builders import approve_all, approved, published, ruleset_body
from tests.integration.credit.conftest import Borrower, Officers

APPLY = "/api/credit/applications/"
SETUP = "/api/credit/challenger/"


def _apply(borrower: Borrower, product: str) -> dict[str, Any]:
    return {
        "taxpayerPk": borrower.taxpayer_pk,
        "amount": "150000",
        "termMonths": 6,
        "purpose": "inventory",
        "product": product,
    }


async def _decisions(client: Any, borrower: Borrower, product: str, n: int) -> list[dict[str, Any]]:
    out = []
    for _ in range(n):
        r = await client.post(APPLY, json=_apply(borrower, product), headers=borrower.headers)
        assert r.status_code == 201, r.text
        out.append(r.json()["decision"])
    return out


async def test_shadow_records_the_challenger_beside_the_champion(
    client: Any, officers: Officers, product: str, borrower: Borrower
) -> None:
    from credit.decisions import ShadowDecision
    from credit.tables import Decision

    champion = await published(ruleset_body(product), officers.author, officers.reviewer)
    challenger = await approved(approve_all(product, "2"), officers.author, officers.reviewer)
    r = await client.post(
        SETUP,
        json={"product": product, "challengerId": challenger, "share": 1.0, "mode": "shadow"},
        headers=officers.author_headers,
    )
    assert r.status_code == 201, r.text
    setup = r.json()
    assert (setup["championId"], setup["challengerId"], setup["active"]) == (champion, challenger, True)

    (decision,) = await _decisions(client, borrower, product, 1)
    assert (decision["arm"], decision["rulesetId"]) == ("challenger", champion)  # shadow: the champion decides
    row = await Decision.select().where(Decision.id == decision["id"]).first()
    assert row is not None
    assert row["challenger_setup"] == setup["id"]
    shadow = msgspec.json.decode(row["shadow"], type=ShadowDecision)
    assert shadow.ruleset_id == challenger
    assert shadow.decision.outcome == "approve"  # the challenger approves everyone

    replay = await client.post(f"/api/credit/decisions/{decision['id']}/replay", headers=officers.reviewer_headers)
    assert replay.json()["identical"] is True
    assert replay.json()["shadowIdentical"] is True
    assert replay.json()["armIdentical"] is True


async def test_split_lets_the_challenger_decide_its_share_and_the_report_compares(
    client: Any, officers: Officers, product: str, borrower: Borrower
) -> None:
    champion = await published(ruleset_body(product), officers.author, officers.reviewer)
    challenger = await approved(approve_all(product, "2"), officers.author, officers.reviewer)
    r = await client.post(
        SETUP,
        json={"product": product, "challengerId": challenger, "share": 0.5, "mode": "split"},
        headers=officers.reviewer_headers,
    )
    assert r.status_code == 201
    decisions = await _decisions(client, borrower, product, 24)
    arms = {d["arm"] for d in decisions}
    assert arms == {"champion", "challenger"}  # 24 applications at 50%: both arms (1 in 8 million otherwise)
    for d in decisions:
        assert d["rulesetId"] == (challenger if d["arm"] == "challenger" else champion)
        if d["arm"] == "challenger":
            assert d["outcome"] == "approve"

    report = await client.get(SETUP + "report", params={"product": product}, headers=officers.author_headers)
    assert report.status_code == 200, report.text
    out = report.json()
    in_share = sum(1 for d in decisions if d["arm"] == "challenger")
    assert (out["decisions"], out["inChallengerShare"]) == (24, in_share)
    by_arm = {a["arm"]: a for a in out["arms"]}
    assert by_arm["champion"]["applications"] == 24 - in_share
    assert by_arm["challenger"]["applications"] == in_share
    assert by_arm["challenger"]["approvalRate"] == 1.0
    assert sum(c["applications"] for c in out["swapMatrix"]) == in_share
    assert all(c["challenger"] == "approve" for c in out["swapMatrix"])
    assert {g["grade"] for g in out["byGrade"]} <= {"A", "B", "M", "C", "D"}

    # publishing a version ends the experiment: its comparison would mix champions
    stopped_by = await published(ruleset_body(product, "3"), officers.author, officers.reviewer)
    current = await client.get(SETUP, params={"product": product}, headers=officers.author_headers)
    assert current.json()["active"] is False
    (after,) = await _decisions(client, borrower, product, 1)
    assert (after["arm"], after["rulesetId"]) == ("champion", stopped_by)


async def test_only_an_approved_version_of_the_product_can_challenge(
    client: Any, officers: Officers, product: str
) -> None:
    from app.db import transaction
    from credit import rulesets
    from tests.integration.credit.builders import officer

    champion = await published(ruleset_body(product), officers.author, officers.reviewer)
    async with transaction():
        draft = await rulesets.create_draft(officer(officers.author), msgspec.json.encode(approve_all(product, "2")))
    for challenger_id, code in ((draft.id, "ruleset_state"), (champion, "ruleset_state")):
        r = await client.post(
            SETUP,
            json={"product": product, "challengerId": challenger_id, "share": 0.2, "mode": "shadow"},
            headers=officers.author_headers,
        )
        assert (r.status_code, r.json()["error"]) == (409, code)
    bad = await client.post(
        SETUP,
        json={"product": product, "challengerId": champion, "share": 1.5, "mode": "shadow"},
        headers=officers.author_headers,
    )
    assert bad.status_code == 422
    none = await client.get(SETUP + "report", params={"product": product}, headers=officers.author_headers)
    assert (none.status_code, none.json()["error"]) == (404, "no_challenger")
    stop = await client.delete(SETUP, params={"product": product}, headers=officers.author_headers)
    assert stop.status_code == 404
