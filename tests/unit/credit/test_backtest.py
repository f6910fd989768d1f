"""Backtest metrics and the swap set on a hand-made history with known answers."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from credit.engine.backtest import HISTORICAL, run_backtest, summarise
from credit.engine.features import FEATURE_SCHEMA
from credit.engine.history import OUTCOME_DTYPE, generate_history
from credit.engine.rules import decide_frame, load_ruleset
from credit.engine.ruleset import Defaults, Ruleset

RULESETS = Path(__file__).resolve().parents[3] / "credit" / "rulesets"


def hand_made() -> pl.DataFrame:
    """Six applications decided by a challenger and a champion (see the module's tests)."""
    return pl.DataFrame(
        {
            "grade": ["A", "A", "B", "B", "C", "M"],
            "industry": [
                "manufacturing",
                "it_services",
                "manufacturing",
                "manufacturing",
                "it_services",
                "it_services",
            ],
            "requested_fen": [1_000_000, 2_000_000, 3_000_000, 500_000, 1_000_000, 1_000_000],
            "pd": [0.01, 0.02, 0.05, 0.03, 0.20, 0.10],
            "lgd_bp": [5000, 4000, 5000, 5000, 6000, 5000],
            "defaulted": [False, True, True, False, True, False],
            "outcome": ["approve", "approve", "approve", "refer", "decline", "approve"],
            "limit_fen": [800_000, 3_000_000, 1_000_000, 500_000, 0, 600_000],
            "champion_outcome": ["approve", "decline", "approve", "approve", "approve", "refer"],
            "champion_limit_fen": [1_000_000, 0, 3_000_000, 500_000, 1_000_000, 700_000],
        },
        schema_overrides={
            "grade": FEATURE_SCHEMA["grade"],
            "industry": FEATURE_SCHEMA["industry"],
            "outcome": OUTCOME_DTYPE,
            "champion_outcome": OUTCOME_DTYPE,
        },
    )


def test_overall_metrics() -> None:
    report = summarise(hand_made(), "challenger", "champion")
    o = report.challenger.overall
    assert (o.applications, o.approved, o.referred, o.declined) == (6, 4, 1, 1)
    assert (o.approval_rate, o.refer_rate, o.decline_rate) == (0.666667, 0.166667, 0.166667)
    assert (o.bads, o.bad_rate) == (2, 0.5)
    assert o.approved_exposure_fen == 800_000 + 2_000_000 + 1_000_000 + 600_000  # capped at the request
    assert o.realised_loss_fen == 800_000 + 500_000  # exposure x LGD of the two approved defaults
    assert o.expected_loss_fen == 4_000 + 16_000 + 25_000 + 30_000
    assert o.average_limit_fen == 1_350_000
    assert o.loss_rate == round(1_300_000 / 4_400_000, 6)
    c = report.champion
    assert c is not None
    assert (c.overall.approved, c.overall.bads, c.overall.realised_loss_fen) == (4, 2, 1_500_000 + 600_000)


def test_per_grade_and_industry() -> None:
    report = summarise(hand_made(), "challenger", "champion")
    a = report.challenger.by_grade["A"]
    assert (a.applications, a.approved, a.bads, a.approved_exposure_fen, a.realised_loss_fen) == (
        2,
        2,
        1,
        2_800_000,
        800_000,
    )
    assert report.challenger.by_grade["C"].approval_rate == 0.0
    assert report.challenger.by_grade["C"].bad_rate is None
    it = report.challenger.by_industry["it_services"]
    assert (it.applications, it.approved, it.declined, it.bads) == (3, 2, 1, 1)
    assert set(report.challenger.by_grade) == {"A", "B", "C", "M"}


def test_swap_matrix_and_sets() -> None:
    swap = summarise(hand_made(), "challenger", "champion").swap
    assert swap is not None
    cells = {(c.champion, c.challenger): (c.applications, c.bads) for c in swap.matrix}
    assert cells == {
        ("approve", "approve"): (2, 1),
        ("approve", "refer"): (1, 0),
        ("approve", "decline"): (1, 1),
        ("refer", "approve"): (1, 0),
        ("decline", "approve"): (1, 1),
    }
    assert [(c.champion, c.challenger) for c in swap.matrix][:3] == [
        ("approve", "approve"),
        ("approve", "refer"),
        ("approve", "decline"),
    ]
    assert (swap.swap_in.applications, swap.swap_in.bads, swap.swap_in.realised_loss_fen) == (2, 1, 800_000)
    assert (swap.swap_out.applications, swap.swap_out.bads, swap.swap_out.realised_loss_fen) == (2, 1, 600_000)


def test_without_a_champion_there_is_no_swap() -> None:
    report = summarise(hand_made().drop("champion_outcome", "champion_limit_fen"), "challenger")
    assert report.champion is None
    assert report.swap is None


@pytest.fixture(scope="module")
def history() -> pl.DataFrame:
    return generate_history(30_000, seed=3)


def test_run_backtest_against_the_recorded_decisions(history: pl.DataFrame) -> None:
    v2 = load_ruleset(RULESETS / "ruleset_tax_loan_v2_challenger.json")
    report = run_backtest(history, v2)
    assert report.champion is not None
    assert report.champion.ruleset == HISTORICAL
    assert report.challenger.ruleset == "tax_loan 2-challenger"
    assert report.champion.overall.approved == history.filter(pl.col("historical_outcome") == "approve").height
    assert report.elapsed_seconds > 0
    swap = report.swap
    assert swap is not None
    assert sum(c.applications for c in swap.matrix) == history.height


def test_run_backtest_matches_the_decided_frame(history: pl.DataFrame) -> None:
    v1 = load_ruleset(RULESETS / "ruleset_tax_loan_v1.json")
    v2 = load_ruleset(RULESETS / "ruleset_tax_loan_v2_challenger.json")
    report = run_backtest(history, v2, v1)
    decided = decide_frame(v2, history, reasons=False)
    approved = decided["outcome"] == "approve"
    assert report.challenger.overall.approved == approved.sum()
    assert report.challenger.overall.bads == (approved & history["defaulted"]).sum()
    assert report.champion is not None
    assert report.champion.ruleset == "tax_loan 1"


def test_screening_rulesets_lower_the_bad_rate(history: pl.DataFrame) -> None:
    v1 = load_ruleset(RULESETS / "ruleset_tax_loan_v1.json")
    approve_all = Ruleset(
        product="tax_loan",
        version="all",
        hit_policy="first",
        max_limit_fen=300_000_000,
        rows=[],
        defaults=Defaults(outcome="approve", limit="300000000"),
    )
    everyone = run_backtest(history, approve_all).challenger.overall
    screened = run_backtest(history, v1).challenger.overall
    assert everyone.approval_rate == 1.0
    assert screened.bad_rate is not None
    assert everyone.bad_rate is not None
    assert screened.bad_rate < everyone.bad_rate / 2
