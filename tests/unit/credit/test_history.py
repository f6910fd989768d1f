"""Synthetic histories: reproducible, realistic, and defaults that follow the features."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from credit.engine.errors import ImportFailed
from credit.engine.features import FEATURE_SCHEMA
from credit.engine.history import HISTORY_SCHEMA, generate_history, read_history, write_history


@pytest.fixture(scope="module")
def history() -> pl.DataFrame:
    return generate_history(60_000, seed=11)


def test_same_seed_same_history_other_seed_other_history() -> None:
    assert generate_history(2_000, seed=5).equals(generate_history(2_000, seed=5))
    assert not generate_history(2_000, seed=5).equals(generate_history(2_000, seed=6))


def test_schema_and_ranges(history: pl.DataFrame) -> None:
    assert history.schema == pl.Schema(HISTORY_SCHEMA)
    assert history["application_id"].is_unique().all()
    assert history.null_count().sum_horizontal().item() == 0
    assert history["pd"].is_between(0.0, 1.0).all()
    assert history["lgd_bp"].is_between(0, 10_000).all()
    assert history["requested_fen"].is_between(1_000_000, 300_000_000).all()
    assert 0.01 < history["defaulted"].mean() < 0.10  # type: ignore[operator]
    assert set(history["industry"].unique()) == set(FEATURE_SCHEMA["industry"].categories)  # type: ignore[attr-defined]


def test_defaults_follow_the_grade(history: pl.DataFrame) -> None:
    rates = dict(history.group_by("grade").agg(pl.col("defaulted").mean()).iter_rows())
    assert rates["A"] < rates["B"] < rates["M"] < rates["C"] < rates["D"]


@pytest.mark.parametrize(
    ("risky", "column"),
    [
        (pl.col("arrears_fen") > 0, "arrears"),
        (pl.col("on_time_ratio_24m") < 0.9, "late filings"),
        (pl.col("sales_yoy_change") < -0.3, "falling sales"),
        (pl.col("years_registered") < 2, "young business"),
        (pl.col("status") == "abnormal", "abnormal status"),
    ],
)
def test_risky_features_default_more(history: pl.DataFrame, risky: pl.Expr, column: str) -> None:
    rates = dict(history.group_by(risky.alias("risky")).agg(pl.col("defaulted").mean()).iter_rows())
    assert rates[True] > 1.5 * rates[False], column


def test_pd_is_calibrated(history: pl.DataFrame) -> None:
    by_band = history.group_by((pl.col("pd") * 10).floor().clip(0, 3).alias("band")).agg(
        pl.col("pd").mean().alias("pd"), pl.col("defaulted").mean().alias("rate"), pl.len()
    )
    for band in by_band.filter(pl.col("len") > 500).iter_rows(named=True):
        assert abs(band["rate"] - band["pd"]) < 0.25 * band["pd"] + 0.003


def test_the_old_policy_declined_riskier_applicants(history: pl.DataFrame) -> None:
    rates = dict(history.group_by("historical_outcome").agg(pl.col("defaulted").mean()).iter_rows())
    assert rates["approve"] < rates["decline"]
    granted = history.filter(pl.col("historical_outcome") == "approve")
    assert (granted["granted_fen"] <= granted["requested_fen"]).all()
    assert (history.filter(pl.col("historical_outcome") != "approve")["granted_fen"] == 0).all()


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_history_files_round_trip(history: pl.DataFrame, tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"h{suffix}"
    write_history(history.head(500), path)
    assert read_history(path).equals(history.head(500))


def test_history_importer_names_bad_cells(history: pl.DataFrame, tmp_path: Path) -> None:
    frame = history.head(20).with_columns(pl.all().cast(pl.String))
    index = pl.int_range(pl.len())
    frame = frame.with_columns(
        pd=pl.when(index == 2).then(pl.lit("1.5")).otherwise("pd"),
        grade=pl.when(index == 4).then(pl.lit("E")).otherwise("grade"),
        defaulted=pl.when(index == 6).then(pl.lit("yes")).otherwise("defaulted"),
        applied_on=pl.when(index == 7).then(pl.lit("2023/01/01")).otherwise("applied_on"),
        requested_fen=pl.when(index == 8).then(pl.lit("-5")).otherwise("requested_fen"),
        sales_yoy_change=pl.when(index == 9).then(pl.lit("inf")).otherwise("sales_yoy_change"),
    )
    path = tmp_path / "bad.csv"
    frame.write_csv(path)
    with pytest.raises(ImportFailed) as caught:
        read_history(path)
    assert [(i.row, i.path) for i in caught.value.issues] == [
        (3, "pd"),
        (5, "grade"),
        (7, "defaulted"),
        (8, "applied_on"),
        (9, "requested_fen"),
        (10, "sales_yoy_change"),
    ]


def test_history_importer_requires_the_columns(history: pl.DataFrame) -> None:
    from credit.engine.history import check_history

    with pytest.raises(ImportFailed) as caught:
        check_history(history.drop("lgd_bp", "defaulted"))
    assert {i.path for i in caught.value.issues} == {"lgd_bp", "defaulted"}
    with pytest.raises(ImportFailed, match="granted_fen"):
        check_history(history.drop("granted_fen"))
    assert "historical_outcome" not in check_history(history.drop("granted_fen", "historical_outcome")).columns
