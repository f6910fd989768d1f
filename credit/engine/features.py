"""The credit features: one definition, two executions.

Each feature is written once as a polars expression over the wide record
layout (``records``); backtests, history generation and monitoring run those
expressions over millions of rows. A live decision cannot afford polars on a
one-row frame (about a millisecond of set-up), so ``features_of`` is a plain
Python twin of the same arithmetic, written to perform the same operations in
the same order (integer sums, then one float division), which makes the two
agree bit for bit. ``tests/unit/credit/test_features.py`` holds that to account
with a hypothesis property test on random records; a change to one side that
is not mirrored on the other fails it.

No feature is ever null: a record without history gets a defined value (no
filings: zero sums, an on-time ratio of 0; no prior-year sales: a YoY change
of 0; no grade: ``M``, the grade the authority gives new businesses), so rules
never have to reason about missing values and both paths agree trivially.
"""

from __future__ import annotations

from typing import Final, Literal

import msgspec
import polars as pl

from credit.engine.records import (
    GRADES,
    INDUSTRIES,
    KINDS,
    MONTHS,
    STATUSES,
    Grade,
    Industry,
    Kind,
    Status,
    TaxRecord,
    month_column,
)

FeatureKind = Literal["category", "int", "float"]


class Features(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The feature snapshot a decision is made on and stored with.

    Unlike the wire Structs these keep snake_case names: the same names are
    columns of backtest frames and identifiers inside rules and limit formulas,
    and one spelling everywhere is what lets an officer read a stored snapshot
    against the table that decided it.
    """

    grade: Grade
    """Latest yearly tax credit grade (``M`` when none has been published)."""
    status: Status
    kind: Kind
    industry: Industry
    tax_paid_12m_fen: int
    """VAT plus income tax paid over the latest 12 filed months."""
    sales_12m_fen: int
    sales_yoy_change: float
    """Sales of months 1-12 against months 13-24, as a fraction (-0.3 is a 30% fall)."""
    zero_months_24m: int
    """Filed months with zero or negative sales."""
    on_time_ratio_24m: float
    arrears_fen: int
    penalties_12m_fen: int
    years_registered: float


FEATURE_KINDS: Final[dict[str, FeatureKind]] = {
    "grade": "category",
    "status": "category",
    "kind": "category",
    "industry": "category",
    "tax_paid_12m_fen": "int",
    "sales_12m_fen": "int",
    "sales_yoy_change": "float",
    "zero_months_24m": "int",
    "on_time_ratio_24m": "float",
    "arrears_fen": "int",
    "penalties_12m_fen": "int",
    "years_registered": "float",
}
CATEGORIES: Final[dict[str, tuple[str, ...]]] = {
    "grade": GRADES,
    "status": STATUSES,
    "kind": KINDS,
    "industry": INDUSTRIES,
}
FEATURE_SCHEMA: Final[dict[str, pl.DataType]] = {
    name: (pl.Enum(CATEGORIES[name]) if kind == "category" else pl.Int64() if kind == "int" else pl.Float64())
    for name, kind in FEATURE_KINDS.items()
}
YEARS_PER_DAY: Final = 1.0 / 365.25
"""A multiplication, not a division by 365.25: polars divides a column by a
scalar through its reciprocal, so both paths multiply, explicitly."""
assert tuple(FEATURE_KINDS) == Features.__struct_fields__


def _months(series: str, first: int, last: int) -> list[pl.Expr]:
    return [pl.col(month_column(series, m)) for m in range(first, last + 1)]


def _sum(series: str, first: int, last: int) -> pl.Expr:
    """Sum over months ``first..last``; months not filed (null) add nothing."""
    return pl.sum_horizontal(_months(series, first, last)).cast(pl.Int64)


def _ratio(numerator: pl.Expr, denominator: pl.Expr) -> pl.Expr:
    """Integer numerator over a positive integer denominator as one float
    division, else 0.0 (the Python twin does exactly this)."""
    return (
        pl.when(denominator > 0)
        .then(numerator.cast(pl.Float64) / denominator.cast(pl.Float64))
        .otherwise(pl.lit(0.0, dtype=pl.Float64))
    )


def feature_exprs() -> dict[str, pl.Expr]:
    """The definition: one expression per feature over the wide layout."""
    sales_12m = _sum("vat_sales_fen", 1, 12)
    sales_prior = _sum("vat_sales_fen", 13, MONTHS)
    filed = pl.sum_horizontal(c.is_not_null().cast(pl.Int64) for c in _months("vat_sales_fen", 1, MONTHS))
    on_time = pl.sum_horizontal(c.cast(pl.Int64) for c in _months("filed_on_time", 1, MONTHS))
    zero = pl.sum_horizontal((c <= 0).cast(pl.Int64) for c in _months("vat_sales_fen", 1, MONTHS))
    latest_grade = pl.col("grades").str.extract(r"^\d{4}:([ABMCD])", 1).fill_null("M")
    return {
        "grade": latest_grade,
        "status": pl.col("status"),
        "kind": pl.col("kind"),
        "industry": pl.col("industry"),
        "tax_paid_12m_fen": _sum("vat_paid_fen", 1, 12) + _sum("income_tax_fen", 1, 12),
        "sales_12m_fen": sales_12m,
        "sales_yoy_change": _ratio(sales_12m - sales_prior, pl.when(sales_prior > 0).then(sales_prior).otherwise(0)),
        "zero_months_24m": zero.cast(pl.Int64),
        "on_time_ratio_24m": _ratio(on_time, filed),
        "arrears_fen": pl.col("arrears_fen"),
        "penalties_12m_fen": pl.col("penalties_fen"),
        "years_registered": (pl.col("as_of") - pl.col("registered_on")).dt.total_days().cast(pl.Float64)
        * YEARS_PER_DAY,
    }


def features_frame(wide: pl.DataFrame | pl.LazyFrame, keep: tuple[str, ...] = ()) -> pl.DataFrame:
    """Features of every row of a wide frame, in ``FEATURE_SCHEMA`` types,
    with the columns named in ``keep`` (ids, outcomes) carried along."""
    exprs = [expr.cast(FEATURE_SCHEMA[name]).alias(name) for name, expr in feature_exprs().items()]
    return wide.lazy().select(*(pl.col(k) for k in keep), *exprs).collect()


def _float_ratio(numerator: int, denominator: int) -> float:
    return float(numerator) / float(denominator) if denominator > 0 else 0.0


def features_of(record: TaxRecord) -> Features:
    """The live twin of ``feature_exprs`` for one record (~10 µs, no polars)."""
    latest = record.latest_first()
    recent, prior = latest[:12], latest[12:MONTHS]
    sales_12m = sum(f.vat_sales_fen for f in recent)
    sales_prior = sum(f.vat_sales_fen for f in prior)
    grade = record.grades[max(record.grades)] if record.grades else "M"
    return Features(
        grade=grade,
        status=record.status,
        kind=record.kind,
        industry=record.industry,
        tax_paid_12m_fen=sum(f.vat_paid_fen for f in recent) + sum(f.income_tax_fen for f in recent),
        sales_12m_fen=sales_12m,
        sales_yoy_change=_float_ratio(sales_12m - sales_prior, sales_prior if sales_prior > 0 else 0),
        zero_months_24m=sum(1 for f in latest if f.vat_sales_fen <= 0),
        on_time_ratio_24m=_float_ratio(sum(1 for f in latest if f.filed_on_time), len(latest)),
        arrears_fen=record.arrears_fen,
        penalties_12m_fen=record.penalties_fen,
        years_registered=float((record.as_of - record.registered_on).days) * YEARS_PER_DAY,
    )


def features_row(features: Features) -> dict[str, object]:
    """A snapshot as a plain mapping (for storage and one-row frames)."""
    return msgspec.structs.asdict(features)
