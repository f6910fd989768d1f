"""Champion/challenger experiments: what decides a product's applications now
(``live_setup``), starting and ending experiments, and the report
comparing the two rulesets on the applications decided while one ran.

Assignment to arms and the decisions themselves happen in
``credit.decisions`` (through the engine's ``decide_live``); here the
recorded decisions are read back. Live applications have no repayment history
yet, so the report compares what each ruleset decided (approval, refer and
decline rates, average limit, the swap matrix, per grade), not bad rates.
"""

from __future__ import annotations

import secrets
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import msgspec
import polars as pl

from app import audit
from app.errors import Conflict, NotFound
from app.security import Principal
from credit.engine.backtest import LOSS_COLUMNS, summarise
from credit.engine.champion import ChallengerConfig
from credit.engine.rules import CompiledRuleset
from credit.rulesets import (
    APPROVED,
    NoPublishedRuleset,
    compiled_version,
    get_version,
    lock_product,
    published_version,
    require_status,
)
from credit.schemas import (
    ArmOut,
    ChallengerCreate,
    ChallengerOut,
    ChallengerReportOut,
    GradeOut,
    SwapCellOut,
    challenger_mode,
    yuan,
)
from credit.tables import ChallengerSetup, Decision, RulesetVersion


class ChallengerRefused(Conflict):
    code = "challenger_refused"


class NoChallenger(NotFound):
    code = "no_challenger"


@dataclass(frozen=True, slots=True)
class LiveSetup:
    """What decides a product's applications right now."""

    champion_id: int
    champion: CompiledRuleset
    setup_id: int | None
    challenger_id: int | None
    challenger: CompiledRuleset | None
    config: ChallengerConfig | None


# One round trip for the published version and the active experiment: this runs
# on every application.
_LIVE_SQL: Final = (
    "SELECT v.id AS champion_id, s.id AS setup_id, s.challenger AS challenger_id, s.share_bp, s.mode, s.salt "
    "FROM credit_ruleset_version v LEFT JOIN credit_challenger_setup s "
    "ON s.product = v.product AND s.active "
    "WHERE v.product = {} AND v.status = 'published'"
)


async def live_setup(product: str) -> LiveSetup:
    rows = await RulesetVersion.raw(_LIVE_SQL, product)
    return await setup_of(product, rows[0] if rows else None)


async def setup_of(product: str, row: dict[str, Any] | None) -> LiveSetup:
    """The live set-up from a row of ``_LIVE_SQL``'s columns (``credit.repository``
    reads them with the applicant in one round trip); the compiled rulesets come
    from the per-process cache, keyed by version id."""
    if row is None or row["champion_id"] is None:
        raise NoPublishedRuleset(f"no published ruleset for {product}")
    champion_id = int(row["champion_id"])
    champion = await compiled_version(champion_id)
    if row["setup_id"] is None:
        return LiveSetup(champion_id, champion, None, None, None, None)
    challenger_id = int(row["challenger_id"])
    config = ChallengerConfig(share=row["share_bp"] / 10_000, mode=row["mode"], salt=row["salt"])
    return LiveSetup(
        champion_id, champion, int(row["setup_id"]), challenger_id, await compiled_version(challenger_id), config
    )


def challenger_out(row: ChallengerSetup) -> ChallengerOut:
    return ChallengerOut(
        id=row.id,
        product=row.product,
        champion_id=row.champion,
        challenger_id=row.challenger,
        share=row.share_bp / 10_000,
        mode=challenger_mode(row.mode),
        active=row.active,
        created_at=row.created_at,
        ended_at=row.ended_at,
    )


async def start_challenger(principal: Principal, data: ChallengerCreate) -> ChallengerSetup:
    """Start an experiment with an approved version against the published one;
    a running experiment on the product ends first."""
    await lock_product(data.product)
    challenger = await get_version(data.challenger_id)
    if challenger.product != data.product:
        raise ChallengerRefused(f"version {challenger.id} belongs to {challenger.product}, not {data.product}")
    require_status(challenger, APPROVED, "only an approved, unpublished version can be a challenger")
    champion = await published_version(data.product)
    if champion is None:
        raise NoPublishedRuleset(f"no published ruleset for {data.product} to challenge")
    await end_challenger(data.product, reason="replaced")
    row = ChallengerSetup(
        product=data.product,
        champion=champion.id,
        challenger=challenger.id,
        share_bp=round(data.share * 10_000),
        mode=data.mode,
        salt=secrets.token_hex(8),
        active=True,
        created_by=principal.account_id,
        created_at=datetime.now(UTC),
    )
    await row.save()
    await audit.record("credit.challenger_started", "challenger_setup", row.id, after=msgspec.to_builtins(data))
    return row


async def latest_challenger(product: str) -> ChallengerSetup:
    """The active experiment of the product, else the latest ended one."""
    row = (
        await ChallengerSetup.objects()
        .where(ChallengerSetup.product == product)
        .order_by(ChallengerSetup.active, ascending=False)
        .order_by(ChallengerSetup.id, ascending=False)
        .first()
    )
    if row is None:
        raise NoChallenger(f"no champion/challenger set-up for {product}")
    return row


async def challenger_report(setup: ChallengerSetup) -> ChallengerReportOut:
    """Compare the two rulesets on the decisions recorded under ``setup``."""
    rows = await Decision.select(
        Decision.arm,
        Decision.outcome,
        Decision.limit_fen,
        Decision.features,
        Decision.shadow,
        Decision.application.amount_fen.as_alias("requested_fen"),
    ).where(Decision.challenger_setup == setup.id)
    table: dict[str, list[Any]] = defaultdict(list)
    for r in rows:
        features = msgspec.json.decode(r["features"])
        mine = (r["outcome"], r["limit_fen"])
        other = mine
        if r["shadow"]:
            shadow = msgspec.json.decode(r["shadow"])["decision"]
            other = (shadow["outcome"], shadow["limitFen"])
        # shadow: the effective decision is the champion's; split: the challenger's
        champion, challenger = (mine, other) if setup.mode == "shadow" or r["arm"] == "champion" else (other, mine)
        for name, value in (
            ("grade", features["grade"]),
            ("industry", features["industry"]),
            ("requested_fen", r["requested_fen"]),
            ("in_challenger", r["arm"] == "challenger"),
            ("champion_outcome", champion[0]),
            ("champion_limit_fen", champion[1]),
            ("challenger_outcome", challenger[0]),
            ("challenger_limit_fen", challenger[1]),
        ):
            table[name].append(value)
    frame = pl.DataFrame(
        {
            **table,
            "pd": [0.0] * len(rows),  # outcomes are not known yet: the report reads no loss columns
            "lgd_bp": [0] * len(rows),
            "defaulted": [False] * len(rows),
        },
        schema={
            "grade": pl.String,
            "industry": pl.String,
            "requested_fen": pl.Int64,
            "in_challenger": pl.Boolean,
            "champion_outcome": pl.String,
            "champion_limit_fen": pl.Int64,
            "challenger_outcome": pl.String,
            "challenger_limit_fen": pl.Int64,
            "pd": pl.Float64,
            "lgd_bp": pl.Int64,
            "defaulted": pl.Boolean,
        },
    )
    champion_row, challenger_row = await get_version(setup.champion), await get_version(setup.challenger)
    champion_label = f"{champion_row.product} {champion_row.version}"
    challenger_label = f"{challenger_row.product} {challenger_row.version}"
    sample = frame.filter(pl.col("in_challenger"))
    both = summarise(
        sample.select(
            *LOSS_COLUMNS,
            pl.col("challenger_outcome").alias("outcome"),
            pl.col("challenger_limit_fen").alias("limit_fen"),
            "champion_outcome",
            "champion_limit_fen",
        ),
        challenger_label,
        champion_label,
    )
    assert both.champion is not None
    assert both.swap is not None
    champion_arm = frame.filter(~pl.col("in_challenger")) if setup.mode == "split" else sample
    grades = sorted(set(both.champion.by_grade) | set(both.challenger.by_grade))
    return ChallengerReportOut(
        setup=challenger_out(setup),
        decisions=frame.height,
        in_challenger_share=sample.height,
        arms=[
            _arm("champion", champion_label, champion_arm, "champion_"),
            _arm("challenger", challenger_label, sample, "challenger_"),
        ],
        swap_matrix=[
            SwapCellOut(champion=c.champion, challenger=c.challenger, applications=c.applications)
            for c in both.swap.matrix
        ],
        by_grade=[
            GradeOut(
                grade=g,
                applications=both.challenger.by_grade[g].applications,
                champion_approval_rate=both.champion.by_grade[g].approval_rate,
                challenger_approval_rate=both.challenger.by_grade[g].approval_rate,
            )
            for g in grades
        ],
    )


def _arm(arm: str, label: str, frame: pl.DataFrame, prefix: str) -> ArmOut:
    outcome, limit = pl.col(f"{prefix}outcome"), pl.col(f"{prefix}limit_fen")
    n = frame.height
    counts = frame.select(
        (outcome == "approve").sum().alias("approve"),
        (outcome == "refer").sum().alias("refer"),
        (outcome == "decline").sum().alias("decline"),
        pl.when(outcome == "approve").then(limit).otherwise(0).sum().alias("limits"),
    ).row(0, named=True)
    approved = int(counts["approve"])
    return ArmOut(
        arm=arm,
        ruleset=label,
        applications=n,
        approval_rate=round(approved / n, 6) if n else 0.0,
        refer_rate=round(int(counts["refer"]) / n, 6) if n else 0.0,
        decline_rate=round(int(counts["decline"]) / n, 6) if n else 0.0,
        average_limit=yuan((2 * int(counts["limits"]) + approved) // (2 * approved)) if approved else None,
    )


async def end_challenger(product: str, *, reason: str) -> ChallengerSetup | None:
    """End the product's running champion/challenger experiment, if any."""
    row = (
        await ChallengerSetup.objects()
        .where((ChallengerSetup.product == product) & ChallengerSetup.active.eq(True))
        .first()
    )
    if row is None:
        return None
    row.active, row.ended_at = False, datetime.now(UTC)
    await row.save([ChallengerSetup.active, ChallengerSetup.ended_at])
    await audit.record("credit.challenger_ended", "challenger_setup", row.id, detail={"reason": reason})
    return row
