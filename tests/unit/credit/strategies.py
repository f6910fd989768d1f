"""Hypothesis strategies and small builders for the credit engine's tests."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import msgspec
import polars as pl
from hypothesis import strategies as st

from credit.engine.features import CATEGORIES, FEATURE_KINDS, FEATURE_SCHEMA, Features, features_row
from credit.engine.provider import sandbox_ric, sandbox_uscc
from credit.engine.records import GRADES, INDUSTRIES, MonthlyFiling, TaxRecord, period_of
from credit.engine.ruleset import OUTCOMES, Condition, Defaults, Row, Ruleset

NUMERIC = [name for name, kind in FEATURE_KINDS.items() if kind != "category"]
# values shared by features and conditions, so that boundaries (==, <= at the edge) are hit often
POOL: dict[str, list[Any]] = {
    "tax_paid_12m_fen": [0, 1, 1_000_000, 5_000_000],
    "sales_12m_fen": [0, -5, 10_000_000, 200_000_000],
    "sales_yoy_change": [0.0, -0.3, -0.5, 0.25],
    "zero_months_24m": [0, 1, 6, 24],
    "on_time_ratio_24m": [0.0, 0.8, 0.85, 1.0],
    "arrears_fen": [0, 1, 50_000],
    "penalties_12m_fen": [0, 500_000, 500_001],
    "years_registered": [0.0, 1.0, 2.0, 0.5],
}
CONSTANTS = {"k": 8, "cap_fen": 300_000_000, "half": 0.5, "zero": 0}


def good_features(**overrides: Any) -> Features:
    """A grade-B enterprise in good standing; override what a test is about."""
    values: dict[str, Any] = {
        "grade": "B",
        "status": "normal",
        "kind": "enterprise",
        "industry": "manufacturing",
        "tax_paid_12m_fen": 10_000_000,
        "sales_12m_fen": 500_000_000,
        "sales_yoy_change": 0.1,
        "zero_months_24m": 0,
        "on_time_ratio_24m": 1.0,
        "arrears_fen": 0,
        "penalties_12m_fen": 0,
        "years_registered": 6.0,
    }
    return Features(**{**values, **overrides})


def frame_of(features: list[Features]) -> pl.DataFrame:
    return pl.DataFrame([features_row(f) for f in features], schema=FEATURE_SCHEMA, orient="row")


def _number(name: str) -> st.SearchStrategy[Any]:
    kind = FEATURE_KINDS[name]
    if kind == "int":
        drawn: st.SearchStrategy[Any] = st.integers(-(10**12), 10**12)
    elif name == "on_time_ratio_24m":
        drawn = st.floats(0.0, 1.0)
    else:
        drawn = st.floats(-1.0, 50.0, allow_nan=False, allow_infinity=False)
    return st.one_of(st.sampled_from(POOL[name]), drawn)


features_strategy = st.builds(
    Features,
    grade=st.sampled_from(GRADES),
    status=st.sampled_from(CATEGORIES["status"]),
    kind=st.sampled_from(CATEGORIES["kind"]),
    industry=st.sampled_from(INDUSTRIES),
    **{name: _number(name) for name in NUMERIC},
)


@st.composite
def conditions(draw: st.DrawFn) -> Condition:
    feature = draw(st.sampled_from(list(FEATURE_KINDS)))
    kind = FEATURE_KINDS[feature]
    if kind == "category":
        domain = CATEGORIES[feature]
        op = draw(st.sampled_from(["==", "!=", "in", "not in"]))
        if op in ("in", "not in"):
            values: list[int | float | str] = draw(
                st.lists(st.sampled_from(domain), min_size=1, max_size=3, unique=True)
            )
            return Condition(feature, op, values)
        return Condition(feature, op, draw(st.sampled_from(domain)))
    ops = ["==", "!=", "<", "<=", ">", ">=", "between"] + (["in", "not in"] if kind == "int" else [])
    op = draw(st.sampled_from(ops))
    value = _number(feature)
    if op == "between":
        low, high = sorted([draw(value), draw(value)])
        return Condition(feature, op, [low, high])
    if op in ("in", "not in"):
        ints = st.one_of(st.sampled_from(POOL[feature]), st.integers(-(10**6), 10**6))
        return Condition(feature, op, draw(st.lists(ints, min_size=1, max_size=4)))
    return Condition(feature, op, draw(value))


_LEAF = st.one_of(
    st.sampled_from(NUMERIC),
    st.sampled_from(list(CONSTANTS)),
    st.integers(-1000, 10**6).map(str),
    st.floats(-1000.0, 1000.0, allow_nan=False, allow_infinity=False).map(repr),
)
formulas = st.recursive(
    _LEAF,
    lambda inner: st.one_of(
        st.tuples(inner, st.sampled_from(["+", "-", "*", "/"]), inner).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
        st.tuples(st.sampled_from(["min", "max"]), st.lists(inner, min_size=2, max_size=3)).map(
            lambda t: f"{t[0]}({', '.join(t[1])})"
        ),
    ),
    max_leaves=8,
)

_REASONS = ["R_ONE", "R_TWO", "R_THREE", "R_FOUR"]


@st.composite
def terms(draw: st.DrawFn) -> dict[str, Any]:
    outcome = draw(st.sampled_from(OUTCOMES))
    reasons = draw(
        st.lists(st.sampled_from(_REASONS), min_size=1 if outcome != "approve" else 0, max_size=2, unique=True)
    )
    return {
        "outcome": outcome,
        "limit": draw(st.none() | formulas),
        "price_tier": draw(st.none() | st.sampled_from(["T1", "T2", "T3"])),
        "reasons": reasons,
    }


@st.composite
def rulesets(draw: st.DrawFn) -> Ruleset:
    policy = draw(st.sampled_from(["first", "collect"]))
    count = draw(st.integers(0, 7))
    rows = []
    for i in range(count):
        # under ``first`` only the last row may have no conditions (validation refuses unreachable rows)
        least = 1 if policy == "first" and i < count - 1 else 0
        rows.append(Row(conditions=draw(st.lists(conditions(), min_size=least, max_size=3)), **draw(terms())))
    default = draw(terms())
    default["limit"] = default["limit"] or "min(k * tax_paid_12m_fen, cap_fen)"
    return Ruleset(
        product="tax_loan",
        version="p",
        hit_policy=policy,
        max_limit_fen=draw(st.sampled_from([300_000_000, 10**13, 12_345])),
        limit_step_fen=draw(st.sampled_from([1, 100, 100_000])),
        constants=CONSTANTS,
        rows=rows,
        defaults=Defaults(**default),
    )


@st.composite
def records(draw: st.DrawFn) -> TaxRecord:
    """Random but valid tax records, edge cases included (no filings, one
    month, gaps before the record date, negative sales, no grades)."""
    n = draw(st.integers(0, 10**6))
    enterprise = draw(st.booleans())
    as_of = draw(st.dates(date(2019, 1, 1), date(2026, 12, 31)))
    registered_on = as_of - timedelta(days=draw(st.integers(0, 12_000)))
    count = draw(st.integers(0, 24))
    latest = as_of.year * 12 + as_of.month - 1 - draw(st.integers(1, 3))
    money = st.one_of(st.sampled_from([0, -1, 1]), st.integers(-(10**11), 10**12))
    filings = [
        MonthlyFiling(
            period=period_of(latest - count + 1 + i),
            vat_sales_fen=draw(money),
            vat_paid_fen=draw(st.integers(0, 10**10)),
            income_tax_fen=draw(st.integers(-(10**6), 10**10)),
            filed_on_time=draw(st.booleans()),
        )
        for i in range(count)
    ]
    years = draw(st.lists(st.integers(as_of.year - 5, as_of.year), unique=True, max_size=4))
    return TaxRecord(
        taxpayer_id=sandbox_uscc(n) if enterprise else sandbox_ric(n),
        kind="enterprise" if enterprise else "sole_proprietor",
        name="测试企业",
        registered_on=registered_on,
        industry=draw(st.sampled_from(INDUSTRIES)),
        status=draw(st.sampled_from(["normal", "abnormal"])),
        grades={str(y): draw(st.sampled_from(GRADES)) for y in years},
        filings=filings,
        arrears_fen=draw(st.integers(0, 10**9)),
        penalties_fen=draw(st.integers(0, 10**8)),
        as_of=as_of,
    )


def replace(ruleset: Ruleset, **changes: Any) -> Ruleset:
    return msgspec.structs.replace(ruleset, **changes)
