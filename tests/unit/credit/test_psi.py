"""Population stability index and its bands."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from credit.engine.features import FEATURE_SCHEMA
from credit.engine.history import generate_history
from credit.engine.psi import band, index, population_stability


@pytest.mark.parametrize(
    ("psi", "expected"), [(0.0, "stable"), (0.099, "stable"), (0.10, "watch"), (0.25, "watch"), (0.2501, "act")]
)
def test_bands(psi: float, expected: str) -> None:
    assert band(psi) == expected


def test_index_by_hand() -> None:
    expected = (0.3 - 0.5) * math.log(0.3 / 0.5) + (0.7 - 0.5) * math.log(0.7 / 0.5)
    assert index([0.5, 0.5], [0.3, 0.7]) == pytest.approx(expected)
    assert index([0.5, 0.5], [0.5, 0.5]) == 0.0
    assert index([1.0, 0.0], [0.5, 0.5]) < 10  # an empty bin is floored, not infinite


def test_same_population_is_stable_and_a_shift_is_flagged() -> None:
    baseline = generate_history(20_000, seed=1)
    same = generate_history(20_000, seed=2)
    results = {r.feature: r for r in population_stability(baseline, same)}
    assert set(results) == set(FEATURE_SCHEMA)
    assert all(r.band == "stable" for r in results.values()), {k: r.psi for k, r in results.items()}
    shifted = same.with_columns(
        pl.col("sales_yoy_change") - 0.4,
        pl.when(pl.col("grade") == "A")
        .then(pl.lit("C"))
        .otherwise(pl.col("grade"))
        .cast(FEATURE_SCHEMA["grade"])
        .alias("grade"),
    )
    drifted = {r.feature: r for r in population_stability(baseline, shifted, ["sales_yoy_change", "grade", "kind"])}
    assert drifted["sales_yoy_change"].band == "act"
    assert drifted["grade"].band == "act"
    assert drifted["kind"].band == "stable"
    assert [b.label for b in drifted["grade"].bins] == ["A", "B", "M", "C", "D"]
    assert drifted["grade"].bins[0].live_share == 0.0


def test_numeric_bins_come_from_baseline_deciles() -> None:
    rng = np.random.default_rng(0)
    baseline = pl.DataFrame({"years_registered": rng.uniform(0, 10, 10_000)})
    result = population_stability(baseline, baseline, ["years_registered"])[0]
    assert len(result.bins) == 10
    assert all(b.baseline_share == pytest.approx(0.1, abs=0.002) for b in result.bins)
    assert result.psi == 0.0
    # twice as many in the two lowest deciles, fewer elsewhere: 0.2 ln 2 + 0.2 ln(4/3) = 0.196
    moderate = pl.DataFrame({"years_registered": np.concatenate([rng.uniform(0, 2, 4_000), rng.uniform(2, 10, 6_000)])})
    result = population_stability(baseline, moderate, ["years_registered"])[0]
    assert result.psi == pytest.approx(0.196, abs=0.02)
    assert result.band == "watch"
