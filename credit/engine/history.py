"""Historical applications with outcomes: a generator, and an importer for real files.

A backtest needs applications whose fate is known. The generator draws tax
records from the synthetic model (``synth``), computes their features with
the one feature definition, and draws defaults from a logistic model of those
features (grade, sales trend, late filings, arrears, zero months, penalties,
age, leverage), so a ruleset that screens on them does see fewer bads. It
also records what the bank decided at the time under its old policy
(``historical_outcome``, ``granted_fen``) so a draft can be compared with
what actually happened when no champion ruleset is given.

Columns (``HISTORY_SCHEMA``): ``application_id``, ``applied_on``, every
feature of ``features.FEATURE_SCHEMA``, ``requested_fen``, ``pd`` (the
probability of default the loss estimate uses), ``lgd_bp`` (loss given
default in basis points), ``defaulted``, and optionally
``historical_outcome`` and ``granted_fen``. Synthetic outcomes are known for
every application, declined ones included; real histories only know them for
booked loans, a limitation their importer cannot fix (reject inference).
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Final

import numpy as np
import polars as pl

from credit.engine import synth
from credit.engine.errors import ImportFailed, ImportIssue
from credit.engine.features import FEATURE_SCHEMA, features_frame
from credit.engine.ruleset import OUTCOMES

OUTCOME_DTYPE: Final = pl.Enum(OUTCOMES)
REQUIRED_SCHEMA: Final[dict[str, pl.DataType]] = {
    "application_id": pl.Int64(),
    "applied_on": pl.Date(),
    **FEATURE_SCHEMA,
    "requested_fen": pl.Int64(),
    "pd": pl.Float64(),
    "lgd_bp": pl.Int64(),
    "defaulted": pl.Boolean(),
}
OPTIONAL_SCHEMA: Final[dict[str, pl.DataType]] = {"historical_outcome": OUTCOME_DTYPE, "granted_fen": pl.Int64()}
HISTORY_SCHEMA: Final = {**REQUIRED_SCHEMA, **OPTIONAL_SCHEMA}
CHUNK: Final = 100_000
FIRST_DAY: Final = date(2022, 7, 1)
DAYS: Final = 730
GRADE_LOGIT: Final = {"A": -0.9, "B": 0.0, "M": 0.45, "C": 1.1, "D": 1.5}
MAX_ISSUES: Final = 20


def default_logit() -> pl.Expr:
    """The log-odds of default, from features only: the generator's truth."""
    ratio = pl.col("requested_fen").cast(pl.Float64) / pl.max_horizontal(pl.col("tax_paid_12m_fen"), 1).cast(pl.Float64)
    return (
        -4.4
        + pl.col("grade").cast(pl.String).replace_strict(GRADE_LOGIT, return_dtype=pl.Float64)
        + 1.5 * (pl.col("status") == "abnormal").cast(pl.Float64)
        - 1.3 * pl.col("sales_yoy_change").clip(-1.0, 1.0)
        + 3.5 * (1.0 - pl.col("on_time_ratio_24m"))
        + 0.9 * (pl.col("arrears_fen") > 0).cast(pl.Float64)
        + 0.10 * pl.col("zero_months_24m").cast(pl.Float64)
        + 0.25 * (pl.col("penalties_12m_fen") > 200_000).cast(pl.Float64)
        - 0.12 * pl.col("years_registered").clip(0.0, 10.0)
        + 0.7 * (pl.col("years_registered") < 2.0).cast(pl.Float64)
        + 0.18 * ratio.clip(0.0, 50.0).log1p()
    )


def _old_policy() -> tuple[pl.Expr, pl.Expr]:
    """The bank's former, simpler policy: what ``historical_outcome`` records."""
    outcome = (
        pl.when((pl.col("status") == "abnormal") | pl.col("grade").is_in(["C", "D"]) | (pl.col("arrears_fen") > 0))
        .then(pl.lit("decline"))
        .when((pl.col("grade") == "M") | (pl.col("years_registered") < 1.0))
        .then(pl.lit("refer"))
        .otherwise(pl.lit("approve"))
    )
    limit = pl.min_horizontal(pl.col("tax_paid_12m_fen") * 5, pl.lit(200_000_000)) // 10_000 * 10_000
    granted = pl.when(outcome == "approve").then(pl.min_horizontal(pl.col("requested_fen"), limit)).otherwise(0)
    return outcome.cast(OUTCOME_DTYPE), granted.cast(pl.Int64)


def generate_history(n: int, seed: int = 20240601) -> pl.DataFrame:
    """``n`` synthetic applications with outcomes, reproducible from ``seed``."""
    if n < 1:
        raise ValueError("n: at least one application")
    rng = np.random.default_rng(seed)
    parts = []
    for start in range(0, n, CHUNK):
        size = min(CHUNK, n - start)
        applied = np.datetime64(FIRST_DAY) + rng.integers(0, DAYS, size).astype("timedelta64[D]")
        wide = synth.generate(rng, applied).frame()
        features = features_frame(wide.with_columns(applied_on=pl.col("as_of")), keep=("applied_on",))
        # applicants ask for a share of a year's sales, in whole 10,000 yuan, between 10,000 yuan and 3 million
        ask = rng.uniform(0.03, 0.35, size) * np.maximum(features["sales_12m_fen"].to_numpy(), 0)
        requested = np.clip(np.round(ask / 1_000_000), 1, 300) * 1_000_000
        features = features.with_columns(
            application_id=pl.Series(np.arange(start + 1, start + size + 1, dtype=np.int64)),
            requested_fen=pl.Series(requested.astype(np.int64)),
        )
        pd_ = features.select((1.0 / (1.0 + (-default_logit()).exp())).alias("pd"))["pd"]
        outcome, granted = _old_policy()
        parts.append(
            features.with_columns(
                pd=pd_,
                lgd_bp=pl.Series(np.rint(rng.beta(2.0, 2.6, size) * 10_000).astype(np.int64)),
                defaulted=pl.Series(rng.random(size) < pd_.to_numpy()),
                historical_outcome=outcome,
                granted_fen=granted,
            )
        )
    return pl.concat(parts).select(pl.col(name).cast(dtype) for name, dtype in HISTORY_SCHEMA.items())


def write_history(frame: pl.DataFrame, path: str | Path) -> None:
    """Parquet for ``.parquet`` (the compact, typed form), else CSV."""
    target = Path(path)
    if target.suffix.lower() == ".parquet":
        frame.write_parquet(target, compression="zstd", statistics=False)
    else:
        frame.write_csv(target)


def read_history(path: str | Path) -> pl.DataFrame:
    """A history file (Parquet or CSV) in ``HISTORY_SCHEMA`` types.

    Every bad cell is reported by row (data rows from 1) and column; a file
    with problems is refused whole.
    """
    source = Path(path)
    suffix = source.suffix.lower()
    if suffix not in (".parquet", ".csv"):
        raise ImportFailed(source.name, [ImportIssue(row=0, path="", message="expected a .parquet or .csv file")])
    try:
        raw = pl.read_parquet(source) if suffix == ".parquet" else pl.read_csv(source, infer_schema=False)
    except pl.exceptions.PolarsError as exc:
        raise ImportFailed(source.name, [ImportIssue(row=0, path="", message=f"unreadable: {exc}")]) from None
    return check_history(raw, source.name)


def check_history(raw: pl.DataFrame, source: str = "history") -> pl.DataFrame:
    """Cast a raw frame to ``HISTORY_SCHEMA`` or raise ``ImportFailed``."""
    missing = [name for name in REQUIRED_SCHEMA if name not in raw.columns]
    if missing:
        issues = [ImportIssue(row=0, path=name, message="required column is missing") for name in missing]
        raise ImportFailed(source, issues)
    optional = [name for name in OPTIONAL_SCHEMA if name in raw.columns]
    if len(optional) == 1:
        other = next(name for name in OPTIONAL_SCHEMA if name not in optional)
        raise ImportFailed(source, [ImportIssue(row=0, path=other, message=f"comes with {optional[0]}")])
    schema = {**REQUIRED_SCHEMA, **{name: OPTIONAL_SCHEMA[name] for name in optional}}
    cast = raw.select(_cast(raw, name, dtype).alias(name) for name, dtype in schema.items())
    checks = {name: _rule(name, cast) for name in schema}
    bad = cast.with_row_index("_row", offset=1).filter(pl.any_horizontal(rule for rule, _ in checks.values()))
    if bad.height:
        found: list[ImportIssue] = []
        for name, (rule, message) in checks.items():
            for row in bad.filter(rule)["_row"].head(MAX_ISSUES).to_list():
                found.append(ImportIssue(row=row, path=name, message=message))
        found.sort(key=lambda issue: issue.row)
        raise ImportFailed(source, found[:MAX_ISSUES], truncated=len(found) > MAX_ISSUES)
    return cast


def _cast(raw: pl.DataFrame, name: str, dtype: pl.DataType) -> pl.Expr:
    column = pl.col(name)
    if raw.schema[name] == pl.String and dtype == pl.Boolean():
        lowered = column.str.to_lowercase()
        return pl.when(lowered.is_in(["true", "1"])).then(True).when(lowered.is_in(["false", "0"])).then(False)
    if raw.schema[name] == pl.String and dtype == pl.Date():
        return column.str.to_date("%Y-%m-%d", strict=False)
    return column.cast(dtype, strict=False)


def _rule(name: str, cast: pl.DataFrame) -> tuple[pl.Expr, str]:
    """A boolean expression that is true on the bad cells of ``name``, and why."""
    dtype = cast.schema[name]
    empty = pl.col(name).is_null()
    if isinstance(dtype, pl.Enum):
        return empty, f"empty or not one of {', '.join(dtype.categories.to_list())}"
    if name == "pd":
        return empty | ~pl.col(name).is_between(0.0, 1.0), "a probability between 0 and 1"
    if name == "lgd_bp":
        return empty | ~pl.col(name).is_between(0, 10_000), "basis points between 0 and 10000"
    if name in ("requested_fen", "granted_fen", "arrears_fen", "penalties_12m_fen"):
        return empty | (pl.col(name) < 0), "a whole number of fen, not negative"
    if dtype == pl.Float64():
        return empty | ~pl.col(name).is_finite(), "a finite number"
    return empty, f"empty or not a valid {dtype}"
