"""Champion / challenger: trying a new ruleset on a share of live applications.

Assignment hashes the application id with a salt, so it is deterministic
(a retried application lands in the same arm, and a report can be recomputed
later), independent of arrival order, and re-randomised by changing the salt
for the next experiment. In ``shadow`` mode the champion still decides and
the challenger's decision is only recorded; in ``split`` mode the challenger
decides its share and the champion's decision is recorded as the
counterfactual. Either way both decisions are kept, which is what the
comparison report reads.
"""

from __future__ import annotations

import hashlib
from typing import Annotated, Final, Literal

import polars as pl
from msgspec import Meta

from app.schemas import Base
from credit.engine.backtest import LOSS_COLUMNS, BacktestReport, Report, RulesetResult, label, summarise
from credit.engine.features import Features
from credit.engine.rules import CompiledRuleset, Decision, Ruleset, compiled, decide, decide_frame

Mode = Literal["shadow", "split"]
Arm = Literal["champion", "challenger"]
_SCALE: Final = float(2**64)


class ChallengerConfig(Base):
    share: Annotated[float, Meta(ge=0.0, le=1.0)]
    """Share of applications that see the challenger (0.1 = one in ten)."""
    mode: Mode
    salt: Annotated[str, Meta(min_length=1, max_length=64)]


class LiveDecision(Base):
    """What one live application got, and what the other ruleset would have said."""

    arm: Arm
    """``challenger`` when the application fell in the challenger's share."""
    effective: Decision
    """The decision the applicant receives."""
    other: Decision | None
    """The other ruleset's decision, for applications in the challenger's share."""


def bucket(application_id: str, salt: str) -> float:
    """A uniform number in [0, 1) fixed by the id and salt."""
    digest = hashlib.blake2b(f"{salt}:{application_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / _SCALE


def in_challenger(application_id: str, config: ChallengerConfig) -> bool:
    return bucket(application_id, config.salt) < config.share


def decide_live(
    champion: Ruleset | CompiledRuleset,
    challenger: Ruleset | CompiledRuleset | None,
    config: ChallengerConfig | None,
    application_id: str,
    features: Features,
) -> LiveDecision:
    """The live decision under a champion/challenger set-up (either may be absent)."""
    if challenger is None or config is None or not in_challenger(application_id, config):
        return LiveDecision(arm="champion", effective=decide(champion, features), other=None)
    ours, theirs = decide(champion, features), decide(challenger, features)
    if config.mode == "shadow":
        return LiveDecision(arm="challenger", effective=ours, other=theirs)
    return LiveDecision(arm="challenger", effective=theirs, other=ours)


class ArmReport(Report):
    arm: Arm
    ruleset: str
    applications: int
    approval_rate: float
    bad_rate: float | None
    realised_loss_fen: int
    average_limit_fen: int | None


class ChallengerReport(Report):
    mode: Mode
    share: float
    arms: list[ArmReport]
    """``split``: each arm as decided. ``shadow``: both rulesets on the challenger's share."""
    comparison: BacktestReport
    """Challenger against champion on the challenger's share: the swap matrix and per-grade views."""


def assign(application_ids: pl.Series, config: ChallengerConfig) -> pl.Series:
    """``in_challenger`` for a column of ids (Python hashing: about a second a million)."""
    return pl.Series(
        "challenger", [bucket(str(i), config.salt) < config.share for i in application_ids], dtype=pl.Boolean
    )


def compare(decided: pl.DataFrame, config: ChallengerConfig, champion: str, challenger: str) -> ChallengerReport:
    """The report from recorded decisions: ``LOSS_COLUMNS``, ``in_challenger``
    (bool), ``champion_outcome``/``champion_limit_fen`` and
    ``challenger_outcome``/``challenger_limit_fen``. Live decisions become such a
    frame once their loans have had time to default."""
    sample = decided.filter(pl.col("in_challenger"))
    both = sample.select(
        *LOSS_COLUMNS,
        pl.col("challenger_outcome").alias("outcome"),
        pl.col("challenger_limit_fen").alias("limit_fen"),
        "champion_outcome",
        "champion_limit_fen",
    )
    comparison = summarise(both, challenger, champion)
    if config.mode == "split":
        rest = decided.filter(~pl.col("in_challenger")).select(
            *LOSS_COLUMNS, pl.col("champion_outcome").alias("outcome"), pl.col("champion_limit_fen").alias("limit_fen")
        )
        arms = [_arm("champion", summarise(rest, champion).challenger), _arm("challenger", comparison.challenger)]
    else:
        assert comparison.champion is not None
        arms = [_arm("champion", comparison.champion), _arm("challenger", comparison.challenger)]
    return ChallengerReport(mode=config.mode, share=config.share, arms=arms, comparison=comparison)


def _arm(arm: Arm, result: RulesetResult) -> ArmReport:
    o = result.overall
    return ArmReport(
        arm=arm,
        ruleset=result.ruleset,
        applications=o.applications,
        approval_rate=o.approval_rate,
        bad_rate=o.bad_rate,
        realised_loss_fen=o.realised_loss_fen,
        average_limit_fen=o.average_limit_fen,
    )


def simulate(
    history: pl.DataFrame,
    champion: Ruleset | CompiledRuleset,
    challenger: Ruleset | CompiledRuleset,
    config: ChallengerConfig,
) -> ChallengerReport:
    """What a champion/challenger set-up would report on past applications,
    assigned by ``application_id`` exactly as live applications would be."""
    old, new = compiled(champion), compiled(challenger)
    a, b = decide_frame(old, history, reasons=False), decide_frame(new, history, reasons=False)
    decided = history.select(LOSS_COLUMNS).with_columns(
        assign(history["application_id"], config).alias("in_challenger"),
        a["outcome"].alias("champion_outcome"),
        a["limit_fen"].alias("champion_limit_fen"),
        b["outcome"].alias("challenger_outcome"),
        b["limit_fen"].alias("challenger_limit_fen"),
    )
    return compare(decided, config, label(old), label(new))
