"""Proactive relief: find borrowers whose tax-reported sales have fallen.

Banks phoned hundreds of small businesses to learn who needed a deferral;
the tax data already tells. Recent months are compared with the same
calendar months a year earlier, which cancels seasonality (a Spring Festival
dip is not a crisis). A borrower is flagged when the fall exceeds the
configured share and the year-earlier months had sales to fall from.
"""

from __future__ import annotations

import polars as pl

from credit.engine.records import MONTHS, month_column


def sales_drop(months: int = 3) -> tuple[pl.Expr, pl.Expr, pl.Expr]:
    """Recent sales, the same months last year, and the change as a fraction,
    over the wide record layout. Months not filed count as no sales."""
    if not 1 <= months <= MONTHS - 12:
        raise ValueError(f"months: between 1 and {MONTHS - 12}")
    recent = pl.sum_horizontal(pl.col(month_column("vat_sales_fen", m)) for m in range(1, months + 1))
    before = pl.sum_horizontal(pl.col(month_column("vat_sales_fen", m + 12)) for m in range(1, months + 1))
    change = pl.when(before > 0).then((recent - before).cast(pl.Float64) / before.cast(pl.Float64))
    return recent.cast(pl.Int64), before.cast(pl.Int64), change


def relief_candidates(wide: pl.DataFrame | pl.LazyFrame, drop_share: float = 0.3, months: int = 3) -> pl.DataFrame:
    """Taxpayers whose last ``months`` of sales fell by more than
    ``drop_share`` against the same months a year before, worst first."""
    if not 0.0 < drop_share <= 1.0:
        raise ValueError("drop_share: a fraction above 0 and at most 1")
    recent, before, change = sales_drop(months)
    return (
        wide.lazy()
        .select(
            "taxpayer_id",
            "name",
            "industry",
            "latest_period",
            recent.alias("recent_sales_fen"),
            before.alias("year_before_sales_fen"),
            change.alias("sales_change"),
        )
        .filter(pl.col("sales_change") < -drop_share)
        .sort("sales_change", "taxpayer_id")
        .collect()
    )
