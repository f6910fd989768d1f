"""Replaying a stored decision: its feature snapshot decided again by the
ruleset version that made it, which must give the identical result.

Nothing is fetched again: the snapshot is the evidence of what the decision
was made on, and the version's body is frozen once submitted, so any
difference means the engine changed behaviour under a stored version (a
regression to fix, or a change that needs a new version). The other side of a
champion/challenger decision and the arm assignment are checked too.
"""

from __future__ import annotations

import msgspec

from app import audit
from credit.decisions import DecisionNotFound, ShadowDecision, json_list
from credit.engine.champion import ChallengerConfig, in_challenger
from credit.engine.features import Features
from credit.engine.rules import Decision as Terms
from credit.engine.rules import decide
from credit.rulesets import compiled_version
from credit.schemas import DecisionTerms, ReplayOut
from credit.tables import ChallengerSetup, Decision


def _terms(d: Terms) -> DecisionTerms:
    return DecisionTerms(
        outcome=d.outcome, limit_fen=d.limit_fen, price_tier=d.price_tier, reasons=d.reasons, rows_hit=d.rows_hit
    )


async def replay(decision_id: int) -> ReplayOut:
    """Recompute a stored decision from its feature snapshot with the version
    that made it, and say whether anything differs."""
    row = await Decision.select().where(Decision.id == decision_id).first()
    if row is None:
        raise DecisionNotFound("no such decision")
    features = msgspec.json.decode(row["features"], type=Features)
    stored = DecisionTerms(
        outcome=row["outcome"],
        limit_fen=row["limit_fen"],
        price_tier=row["price_tier"],
        reasons=json_list(row["reasons"]),
        rows_hit=json_list(row["rows_hit"]),
    )
    replayed = _terms(decide(await compiled_version(row["ruleset"]), features))
    differences = [f for f in DecisionTerms.__struct_fields__ if getattr(stored, f) != getattr(replayed, f)]
    shadow_identical: bool | None = None
    if row["shadow"]:
        shadow = msgspec.json.decode(row["shadow"], type=ShadowDecision)
        again = decide(await compiled_version(shadow.ruleset_id), features)
        shadow_identical = _terms(again) == _terms(shadow.decision)
    arm_identical: bool | None = None
    if row["challenger_setup"] is not None:
        setup = await ChallengerSetup.select().where(ChallengerSetup.id == row["challenger_setup"]).first()
        assert setup is not None
        config = ChallengerConfig(share=setup["share_bp"] / 10_000, mode=setup["mode"], salt=setup["salt"])
        arm_identical = in_challenger(str(row["application"]), config) == (row["arm"] == "challenger")
    out = ReplayOut(
        decision_id=decision_id,
        ruleset_id=row["ruleset"],
        identical=not differences,
        differences=differences,
        stored=stored,
        replayed=replayed,
        shadow_identical=shadow_identical,
        arm_identical=arm_identical,
    )
    await audit.record(
        "credit.decision_replayed",
        "credit_decision",
        decision_id,
        detail={"identical": out.identical, "differences": differences},
    )
    return out
