"""A statistical model of small-business tax records, vectorised with numpy.

One model feeds both the sandbox gateway (one taxpayer at a time, seeded by
the taxpayer id) and the history generator (a million applications), so a
backtest on synthetic history sees the same kind of data the sandbox returns
to live decisions. A latent quality score drives growth, zero months, late
filings, arrears, abnormal status and the yearly grades, so they correlate the
way they do in real portfolios; seasonality and tax rates follow the industry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt
import polars as pl

from credit.engine.records import GRADES, INDUSTRIES, KINDS, MONTHS, SERIES, STATUSES, WIDE_SCHEMA, month_column

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

INDUSTRY_SHARE: Final = np.array([0.20, 0.26, 0.09, 0.08, 0.11, 0.10, 0.05, 0.11])
MEDIAN_MONTHLY_SALES_YUAN: Final = np.array([900e3, 350e3, 1200e3, 400e3, 160e3, 450e3, 220e3, 260e3])
VAT_RATE: Final = np.array([0.13, 0.13, 0.09, 0.09, 0.06, 0.06, 0.09, 0.06])
SEASON: Final = np.array(
    [  # multipliers by calendar month, Jan..Dec; Spring Festival dips (Feb) and year-end peaks
        [0.90, 0.70, 1.00, 1.00, 1.00, 1.05, 1.00, 1.00, 1.05, 1.05, 1.10, 1.15],
        [1.20, 0.85, 0.90, 0.90, 0.95, 1.00, 0.95, 0.95, 1.00, 1.05, 1.15, 1.10],
        [0.70, 0.45, 0.95, 1.05, 1.10, 1.10, 1.05, 1.05, 1.10, 1.10, 1.15, 1.20],
        [1.05, 0.70, 0.95, 1.00, 1.00, 1.00, 1.00, 1.00, 1.05, 1.10, 1.15, 1.05],
        [1.25, 1.30, 0.85, 0.90, 1.00, 0.95, 1.05, 1.05, 0.95, 1.10, 0.85, 1.05],
        [0.95, 0.75, 1.00, 1.00, 1.00, 1.05, 1.00, 1.00, 1.05, 1.00, 1.00, 1.25],
        [0.80, 0.60, 0.70, 0.80, 0.90, 1.20, 1.30, 1.10, 1.40, 1.40, 1.00, 0.80],
        [0.95, 0.70, 1.00, 1.00, 1.00, 1.05, 1.00, 1.00, 1.05, 1.05, 1.05, 1.15],
    ]
)
QUARTER_FILING_MONTHS: Final = np.array([0, 3, 6, 9])  # Jan, Apr, Jul, Oct: income tax prepaid for the last quarter


def _sigmoid(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    return np.asarray(1.0 / (1.0 + np.exp(-x)), dtype=np.float64)


@dataclass(frozen=True, slots=True)
class SynthBatch:
    """``n`` synthetic records as arrays; monthly arrays are ``(n, 24)`` with
    column 0 the latest month, and months beyond ``months`` are not filed."""

    kind: IntArray
    industry: IntArray
    abnormal: BoolArray
    as_of: npt.NDArray[np.datetime64]
    registered_on: npt.NDArray[np.datetime64]
    latest_index: IntArray
    """Month index (year * 12 + month - 1) of the latest filing period."""
    months: IntArray
    grade_year: IntArray
    """The latest graded year; ``grades[:, j]`` is for ``grade_year - j``."""
    grades: IntArray
    """Index into ``GRADES``, or -1 for no grade that year."""
    sales: IntArray
    vat_paid: IntArray
    income_tax: IntArray
    on_time: BoolArray
    arrears: IntArray
    penalties: IntArray

    def __len__(self) -> int:
        return len(self.kind)

    def frame(self, taxpayer_ids: list[str] | None = None, names: list[str] | None = None) -> pl.DataFrame:
        """The batch in the wide record layout (see ``records``)."""
        n = len(self)
        latest_year, latest_month = self.latest_index // 12, self.latest_index % 12 + 1
        grade_parts = [
            pl.when(pl.lit(self.grades[:, j] >= 0)).then(
                pl.format(
                    "{}:{}",
                    pl.lit(self.grade_year - j),
                    pl.lit(np.array(GRADES)[np.clip(self.grades[:, j], 0, None)]),
                )
            )
            for j in range(self.grades.shape[1])
        ]
        columns: dict[str, pl.Series | pl.Expr] = {
            "taxpayer_id": pl.Series(taxpayer_ids if taxpayer_ids is not None else [None] * n, dtype=pl.String),
            "kind": pl.Series(np.array(KINDS)[self.kind]),
            "name": pl.Series(names if names is not None else [None] * n, dtype=pl.String),
            "registered_on": pl.Series(self.registered_on),
            "industry": pl.Series(np.array(INDUSTRIES)[self.industry]),
            "status": pl.Series(np.array(STATUSES)[self.abnormal.astype(np.int64)]),
            "arrears_fen": pl.Series(self.arrears),
            "penalties_fen": pl.Series(self.penalties),
            "as_of": pl.Series(self.as_of),
        }
        frame = pl.DataFrame(columns).with_columns(
            grades=pl.concat_str(grade_parts, separator=";", ignore_nulls=True),
            latest_period=pl.when(pl.lit(self.months > 0)).then(
                pl.format("{}-{}", pl.lit(latest_year), pl.lit(latest_month).cast(pl.String).str.zfill(2))
            ),
        )
        monthly = {
            "vat_sales_fen": self.sales,
            "vat_paid_fen": self.vat_paid,
            "income_tax_fen": self.income_tax,
            "filed_on_time": self.on_time,
        }
        assert tuple(monthly) == SERIES
        months = pl.DataFrame(
            {month_column(s, m + 1): values[:, m] for s, values in monthly.items() for m in range(MONTHS)}
        )
        filed = pl.col("_months")
        return pl.concat([frame.with_columns(_months=pl.Series(self.months)), months], how="horizontal").select(
            (pl.when(filed > int(name[-2:]) - 1).then(pl.col(name)) if name[-4:-2] == "_m" else pl.col(name))
            .cast(dtype)
            .alias(name)
            for name, dtype in WIDE_SCHEMA.items()
        )


def generate(rng: np.random.Generator, as_of: npt.NDArray[np.datetime64], kind: IntArray | None = None) -> SynthBatch:
    """One synthetic record per element of ``as_of`` (dates the records were
    produced); ``kind`` (indexes into ``KINDS``) when the caller knows it."""
    n = len(as_of)
    as_of = as_of.astype("datetime64[D]")
    as_of_month = as_of.astype("datetime64[M]").astype(np.int64) + 1970 * 12  # month index of as_of
    latest_index = as_of_month - 1
    z = rng.standard_normal(n)
    drawn = (rng.random(n) < 0.22).astype(np.int64)
    kind = drawn if kind is None else kind
    industry = rng.choice(len(INDUSTRIES), size=n, p=INDUSTRY_SHARE).astype(np.int64)
    years = np.clip(np.exp(np.log(5.0) + 0.8 * rng.standard_normal(n) + 0.15 * z), 0.15, 30.0)
    registered_on = as_of - (years * 365.25).astype(np.int64).astype("timedelta64[D]")
    registered_month = registered_on.astype("datetime64[M]").astype(np.int64) + 1970 * 12
    months = np.clip(latest_index - registered_month + 1, 0, MONTHS)

    # sales: a level by industry and size, a yearly trend, seasonality, noise; a few recent downturns
    kind_scale = np.where(kind == 1, 0.15, 1.0)
    level = MEDIAN_MONTHLY_SALES_YUAN[industry] * kind_scale * np.exp(0.9 * rng.standard_normal(n) + 0.25 * z) * 100
    growth = np.clip(0.04 + 0.08 * z + 0.12 * rng.standard_normal(n), -0.6, 0.8)
    back = np.arange(MONTHS)[None, :]
    calendar = (latest_index[:, None] - back) % 12
    trend = level[:, None] * (1.0 + growth[:, None]) ** (-back / 12.0)
    noise = np.exp(0.18 * rng.standard_normal((n, MONTHS)))
    sales_f = trend * SEASON[industry[:, None], calendar] * noise
    downturn = rng.random(n) < _sigmoid(-2.6 - 0.6 * z)
    downturn_len = rng.integers(3, 10, size=n)
    sales_f *= np.where(downturn[:, None] & (back < downturn_len[:, None]), rng.uniform(0.3, 0.75, (n, 1)), 1.0)

    abnormal = rng.random(n) < _sigmoid(-5.0 - 1.3 * z)
    zero = (rng.random((n, MONTHS)) < _sigmoid(-4.0 - 1.0 * z)[:, None]) | (abnormal[:, None] & (back < 3))
    negative = rng.random((n, MONTHS)) < 0.004
    sales_f = np.where(zero, 0.0, sales_f)
    sales_f = np.where(negative & ~zero, -rng.uniform(0.05, 0.3, (n, MONTHS)) * level[:, None], sales_f)
    sales = np.rint(sales_f).astype(np.int64)

    # VAT: small-scale taxpayers pay 1% of sales, general taxpayers the rate on the value they add
    small_scale = (kind == 1) | (level * 12 < 5_000_000 * 100)
    value_added = rng.uniform(0.12, 0.35, n)
    vat_share = np.where(small_scale, 0.01, VAT_RATE[industry] * value_added)
    vat_paid = np.rint(np.clip(sales_f, 0.0, None) * vat_share[:, None]).astype(np.int64)

    # income tax: prepaid each quarter; small low-profit enterprises at an effective 5%, others 25%
    margin = np.clip(0.06 + 0.03 * z + 0.02 * rng.standard_normal(n), 0.0, 0.25)
    effective = np.where(kind == 1, 0.2, np.where(level * 12 < 30_000_000 * 100, 0.05, 0.25))
    quarter_month = np.isin(calendar, QUARTER_FILING_MONTHS)
    income_tax_f = np.where(quarter_month & ~zero, 3.0 * trend * margin[:, None] * effective[:, None], 0.0)
    income_tax = np.rint(income_tax_f).astype(np.int64)

    late = (rng.random((n, MONTHS)) < _sigmoid(-4.6 - 1.2 * z)[:, None]) | (abnormal[:, None] & (back < 3))
    present = back < months[:, None]
    late &= present
    arrears_flag = (rng.random(n) < _sigmoid(-3.2 - 1.2 * z)) | abnormal
    monthly_vat = np.maximum(vat_paid.mean(axis=1), 100_000)
    arrears = np.where(arrears_flag, np.rint(rng.uniform(0.2, 3.0, n) * monthly_vat), 0).astype(np.int64)
    late_12 = (late[:, :12]).sum(axis=1)
    fines = late_12 * rng.integers(200, 2001, size=n) * 100
    late_fees = np.rint(arrears * 0.0005 * rng.integers(10, 120, size=n)).astype(np.int64)
    penalties = (fines + late_fees).astype(np.int64)

    grade_year, grades = _grades(
        rng,
        z,
        as_of=as_of,
        registered_on=registered_on,
        late=late,
        present=present,
        arrears=arrears_flag,
        abnormal=abnormal,
    )
    return SynthBatch(
        kind=kind,
        industry=industry,
        abnormal=abnormal,
        as_of=as_of,
        registered_on=registered_on,
        latest_index=latest_index,
        months=months.astype(np.int64),
        grade_year=grade_year,
        grades=grades,
        sales=np.where(present, sales, 0),
        vat_paid=np.where(present, vat_paid, 0),
        income_tax=np.where(present, income_tax, 0),
        on_time=~late,
        arrears=arrears,
        penalties=penalties,
    )


def _grades(
    rng: np.random.Generator,
    z: npt.NDArray[np.float64],
    *,
    as_of: npt.NDArray[np.datetime64],
    registered_on: npt.NDArray[np.datetime64],
    late: BoolArray,
    present: BoolArray,
    arrears: BoolArray,
    abnormal: BoolArray,
) -> tuple[IntArray, IntArray]:
    """Yearly grades as the authority publishes them each April for the year
    before: M for a business registered during the year, none before it
    existed, otherwise from a score of compliance (A >= 90, B >= 70, C >= 40, D)."""
    n = len(z)
    year = as_of.astype("datetime64[Y]").astype(np.int64) + 1970
    month = as_of.astype("datetime64[M]").astype(np.int64) % 12 + 1
    grade_year = np.where(month >= 5, year - 1, year - 2)
    registered_year = registered_on.astype("datetime64[Y]").astype(np.int64) + 1970
    late_share = late.sum(axis=1) / np.maximum(present.sum(axis=1), 1)
    grades = np.full((n, 3), -1, dtype=np.int64)
    for j in range(3):
        y = grade_year - j
        score = 87 + 7 * z + 4 * rng.standard_normal(n) - 60 * late_share - 18 * arrears
        code = np.select([score >= 90, score >= 70, score >= 40], [0, 1, 3], default=4)
        code = np.where(abnormal & (j == 0), 4, code)
        code = np.where(registered_year == y, 2, code)
        grades[:, j] = np.where(registered_year > y, -1, code)
    return grade_year, grades
