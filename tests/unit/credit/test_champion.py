"""Champion / challenger: stable assignment, live routing and the comparison report."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from credit.engine.champion import ChallengerConfig, assign, bucket, decide_live, in_challenger, simulate
from credit.engine.history import generate_history
from credit.engine.rules import decide, load_ruleset

from .strategies import good_features

RULESETS = Path(__file__).resolve().parents[3] / "credit" / "rulesets"
V1 = load_ruleset(RULESETS / "ruleset_tax_loan_v1.json")
V2 = load_ruleset(RULESETS / "ruleset_tax_loan_v2_challenger.json")


def test_assignment_is_deterministic_and_honours_the_share() -> None:
    config = ChallengerConfig(share=0.2, mode="shadow", salt="2025-q3")
    ids = [f"APP-{n}" for n in range(20_000)]
    chosen = [in_challenger(i, config) for i in ids]
    assert chosen == [in_challenger(i, config) for i in ids]
    assert 0.18 < sum(chosen) / len(ids) < 0.22
    other_salt = ChallengerConfig(share=0.2, mode="shadow", salt="2025-q4")
    assert chosen != [in_challenger(i, other_salt) for i in ids]
    assert all(0.0 <= bucket(i, "s") < 1.0 for i in ids[:100])
    assert assign(pl.Series(ids[:500]), config).to_list() == chosen[:500]


def test_share_zero_and_one() -> None:
    assert not in_challenger("x", ChallengerConfig(share=0.0, mode="split", salt="s"))
    assert in_challenger("x", ChallengerConfig(share=1.0, mode="split", salt="s"))


def test_live_shadow_records_the_challenger_without_acting_on_it() -> None:
    applicant = good_features(grade="M")  # v1 refers grade M, the challenger approves it
    config = ChallengerConfig(share=1.0, mode="shadow", salt="s")
    live = decide_live(V1, V2, config, "APP-1", applicant)
    assert live.arm == "challenger"
    assert live.effective == decide(V1, applicant)
    assert live.other == decide(V2, applicant)
    assert (live.effective.outcome, live.other.outcome) == ("refer", "approve")


def test_live_split_lets_the_challenger_decide() -> None:
    applicant = good_features(grade="M")
    live = decide_live(V1, V2, ChallengerConfig(share=1.0, mode="split", salt="s"), "APP-1", applicant)
    assert live.effective.outcome == "approve"
    assert live.effective.ruleset_version == "2-challenger"
    assert live.other is not None
    assert live.other.ruleset_version == "1"


def test_live_outside_the_share_or_without_challenger() -> None:
    applicant = good_features()
    outside = decide_live(V1, V2, ChallengerConfig(share=0.0, mode="split", salt="s"), "APP-1", applicant)
    assert (outside.arm, outside.other) == ("champion", None)
    assert decide_live(V1, None, None, "APP-1", applicant).effective == decide(V1, applicant)


@pytest.fixture(scope="module")
def history() -> pl.DataFrame:
    return generate_history(20_000, seed=8)


def test_split_report_has_one_arm_per_ruleset(history: pl.DataFrame) -> None:
    report = simulate(history, V1, V2, ChallengerConfig(share=0.25, mode="split", salt="s"))
    champion, challenger = report.arms
    assert (champion.arm, champion.ruleset, challenger.arm, challenger.ruleset) == (
        "champion",
        "tax_loan 1",
        "challenger",
        "tax_loan 2-challenger",
    )
    assert champion.applications + challenger.applications == history.height
    assert 0.22 < challenger.applications / history.height < 0.28
    assert report.comparison.applications == challenger.applications
    assert report.comparison.swap is not None


def test_shadow_report_compares_both_rulesets_on_the_same_applications(history: pl.DataFrame) -> None:
    report = simulate(history, V1, V2, ChallengerConfig(share=0.25, mode="shadow", salt="s"))
    champion, challenger = report.arms
    assert champion.applications == challenger.applications == report.comparison.applications
    assert champion.approval_rate != challenger.approval_rate
