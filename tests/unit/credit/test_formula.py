"""The limit formula language: what it accepts, what it refuses, how it computes."""

from __future__ import annotations

import polars as pl
import pytest

from credit.engine import formula
from credit.engine.formula import BinOp, FormulaError, Num, Ref, parse, to_polars, to_python

FEATURES = frozenset({"tax_paid_12m_fen", "sales_12m_fen", "years_registered"})
CONSTANTS = {"k": 8.0, "cap_fen": 300_000_000.0}


def evaluate(text: str, **values: float) -> tuple[float, float]:
    """The formula on both paths."""
    tree = parse(text, FEATURES, CONSTANTS)
    python = to_python(tree)(lambda name: values[name])
    frame = pl.DataFrame({name: [value] for name, value in values.items()} or {"_": [0]})
    polars = frame.select(to_polars(tree).alias("v"))["v"][0]
    return python, polars


def test_product_limit_formula() -> None:
    assert evaluate("min(k * tax_paid_12m_fen, cap_fen)", tax_paid_12m_fen=1_000_000) == (8e6, 8e6)
    assert evaluate("min(k * tax_paid_12m_fen, cap_fen)", tax_paid_12m_fen=10**9) == (3e8, 3e8)


def test_constants_are_inlined_and_folded() -> None:
    assert parse("k * 2 + 1", FEATURES, CONSTANTS) == Num(17.0)
    assert parse("tax_paid_12m_fen / 4", FEATURES, CONSTANTS) == BinOp("*", Ref("tax_paid_12m_fen"), Num(0.25))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("tax_paid_12m_fen / 0", 0.0),
        ("tax_paid_12m_fen / (k - 8)", 0.0),
        ("sales_12m_fen / years_registered", 0.0),  # years_registered is 0 below
        ("-tax_paid_12m_fen + max(1, 2, 3)", -97.0),
    ],
)
def test_edge_arithmetic_is_defined_and_identical(text: str, expected: float) -> None:
    assert evaluate(text, tax_paid_12m_fen=100, sales_12m_fen=5, years_registered=0.0) == (expected, expected)


def test_overflow_saturates_instead_of_becoming_infinite() -> None:
    values = {"sales_12m_fen": 1e15, "years_registered": 1e-300}
    assert evaluate("sales_12m_fen / years_registered * 10", **values) == (formula.BOUND, formula.BOUND)
    assert evaluate("0 - sales_12m_fen / years_registered", **values) == (-formula.BOUND, -formula.BOUND)
    # saturated, not infinite: inf - inf would have been NaN
    assert evaluate("sales_12m_fen / years_registered - sales_12m_fen / years_registered", **values) == (0.0, 0.0)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("__import__('os').system('true')", "only min"),
        ("tax_paid_12m_fen.real", "Attribute is not allowed"),
        ("(lambda: 1)()", "only min"),
        ("[x for x in (1, 2)]", "ListComp is not allowed"),
        ("tax_paid_12m_fen ** 2", "BinOp is not allowed"),
        ("tax_paid_12m_fen // 2", "BinOp is not allowed"),
        ("min(a=1, b=2)", "plain values"),
        ("min(1)", "two or more"),
        ("min(*[1, 2])", "two or more"),
        ("True + 1", "not a number"),
        ("'1' + 1", "not a number"),
        ("grade * 2", "unknown name 'grade'"),
        ("tax_paid_12m_fen if 1 else 2", "IfExp is not allowed"),
        ("tax_paid_12m_fen >= 1", "Compare is not allowed"),
        ("1e16 * tax_paid_12m_fen", "out of range"),
        ("tax_paid_12m_fen / 1e-320", "almost nothing"),
        ("min(1, ", "not a formula"),
        ("x" * 400, "longer than"),
        ("+".join(["1"] * 40), "more than 60 parts"),
    ],
)
def test_refuses_anything_outside_the_language(text: str, message: str) -> None:
    with pytest.raises(FormulaError, match=message):
        parse(text, FEATURES, CONSTANTS)


def test_refs_lists_the_features_read() -> None:
    assert formula.refs(parse("min(k * tax_paid_12m_fen, sales_12m_fen / 3)", FEATURES, CONSTANTS)) == {
        "tax_paid_12m_fen",
        "sales_12m_fen",
    }
