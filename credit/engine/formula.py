"""The limit formula language: arithmetic, ``min`` and ``max`` over numeric
features and named constants, e.g. ``min(k * tax_paid_12m_fen, cap_fen)``.

Formulas come from risk officers through a browser, so they are parsed with
``ast`` and checked node by node against a whitelist; nothing is ever passed
to ``eval``. A checked formula compiles twice: to a Python closure for live
decisions and to a polars expression for backtests. Both evaluate in IEEE-754
double precision with the same operations in the same order, which is what
makes the two paths agree exactly: constant parts are folded at parse time
and a division by a constant becomes a multiplication by its reciprocal, so
polars is only ever asked for plain element-wise IEEE operations. The
decision tables turn the result into whole fen (``rules``): money never stays
a float. Division by zero yields 0 and overflow saturates, on both paths alike.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final

import polars as pl

MAX_LENGTH: Final = 300
MAX_NODES: Final = 60
MAX_CONSTANT: Final = 1e15
BOUND: Final = 1e300
"""Every intermediate result is clamped to +-BOUND: with no infinities there
are no NaNs (inf - inf, inf * 0), and without NaNs Python's and polars' min and
max agree."""
FUNCTIONS: Final = frozenset({"min", "max"})
_BINARY: Final[dict[type[ast.operator], str]] = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/"}

Getter = Callable[[str], float]


class FormulaError(ValueError):
    """A formula outside the language; the message is for the officer."""


@dataclass(frozen=True, slots=True)
class Num:
    value: float


@dataclass(frozen=True, slots=True)
class Ref:
    name: str


@dataclass(frozen=True, slots=True)
class Neg:
    operand: Node


@dataclass(frozen=True, slots=True)
class BinOp:
    op: str
    left: Node
    right: Node


@dataclass(frozen=True, slots=True)
class Call:
    function: str
    args: tuple[Node, ...]


Node = Num | Ref | Neg | BinOp | Call


def parse(text: str, features: frozenset[str], constants: Mapping[str, float]) -> Node:
    """Check ``text`` and return its tree; names resolve to numeric features
    or to the ruleset's constants (inlined here, so a formula is self-contained)."""
    if len(text) > MAX_LENGTH:
        raise FormulaError(f"longer than {MAX_LENGTH} characters")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise FormulaError(f"not a formula: {exc.msg}") from None
    if sum(1 for _ in ast.walk(tree)) > MAX_NODES:
        raise FormulaError(f"more than {MAX_NODES} parts; split the idea into rows")
    return _node(tree.body, features, constants)


def _node(node: ast.AST, features: frozenset[str], constants: Mapping[str, float]) -> Node:
    if isinstance(node, ast.Constant):
        return _number(node.value)
    if isinstance(node, ast.Name):
        return _name(node.id, features, constants)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        operand = _node(node.operand, features, constants)
        return operand if isinstance(node.op, ast.UAdd) else _fold_constants(Neg(operand))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        lhs, rhs = _node(node.left, features, constants), _node(node.right, features, constants)
        return _binary(_BINARY[type(node.op)], lhs, rhs)
    if isinstance(node, ast.Call):
        return _call(node, features, constants)
    raise FormulaError(f"{type(node).__name__} is not allowed: use numbers, names, + - * /, min, max")


def _number(value: object) -> Num:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise FormulaError(f"{value!r} is not a number")
    if not math.isfinite(value) or abs(value) > MAX_CONSTANT:
        raise FormulaError(f"the number {value} is out of range")
    return Num(float(value))


def _name(name: str, features: frozenset[str], constants: Mapping[str, float]) -> Node:
    if name in features:
        return Ref(name)
    if name in constants:
        return Num(float(constants[name]))
    raise FormulaError(f"unknown name {name!r}: use a numeric feature or a constant of the ruleset")


def _binary(op: str, lhs: Node, rhs: Node) -> Node:
    if op == "/" and isinstance(rhs, Num):
        # a / c is a * (1 / c): one multiplication, identical in Python and polars
        # (polars itself divides a column by a scalar this way, but that is its detail)
        if rhs.value == 0.0:
            return Num(0.0)
        reciprocal = 1.0 / rhs.value
        if not math.isfinite(reciprocal):
            raise FormulaError(f"dividing by {rhs.value} is dividing by almost nothing")
        return _fold_constants(BinOp("*", lhs, Num(reciprocal)))
    return _fold_constants(BinOp(op, lhs, rhs))


def _call(node: ast.Call, features: frozenset[str], constants: Mapping[str, float]) -> Node:
    function = node.func.id if isinstance(node.func, ast.Name) else ""
    if function not in FUNCTIONS or node.keywords:
        raise FormulaError("only min(...) and max(...) may be called, with plain values")
    if len(node.args) < 2 or any(isinstance(a, ast.Starred) for a in node.args):
        raise FormulaError(f"{function}() takes two or more values")
    return _fold_constants(Call(function, tuple(_node(a, features, constants) for a in node.args)))


def _fold_constants(node: Node) -> Node:
    """A part without features becomes its value, computed by the Python
    evaluator: polars then never sees an operation on two literals, whose
    evaluation it would be free to arrange differently."""
    if refs(node):
        return node
    return Num(to_python(node)(_no_features))


def _no_features(name: str) -> float:
    raise AssertionError(f"constant part reads {name}")  # pragma: no cover - refs() was empty


def refs(node: Node) -> set[str]:
    """The features a formula reads."""
    match node:
        case Ref(name=name):
            return {name}
        case Neg(operand=operand):
            return refs(operand)
        case BinOp(left=left, right=right):
            return refs(left) | refs(right)
        case Call(args=args):
            return set().union(*(refs(a) for a in args))
        case _:
            return set()


def to_python(node: Node) -> Callable[[Getter], float]:
    """A closure evaluating the formula on one application's features."""
    match node:
        case Num(value=value):
            return lambda get: value
        case Ref(name=name):
            return lambda get: float(get(name))
        case Neg(operand=operand):
            inner = to_python(operand)
            return lambda get: -inner(get)
        case BinOp(op=op, left=left, right=right):
            lhs, rhs = to_python(left), to_python(right)
            return _python_binary(op, lhs, rhs)
        case Call(function=function, args=args):
            parts = [to_python(a) for a in args]
            pick = min if function == "min" else max
            return lambda get: _fold(pick, [p(get) for p in parts])


def _fold(pick: Callable[[float, float], float], values: list[float]) -> float:
    """Pairwise left to right, exactly as ``to_polars`` nests it."""
    result = values[0]
    for value in values[1:]:
        result = pick(result, value)
    return result


def _clamp(value: float) -> float:
    return -BOUND if value < -BOUND else BOUND if value > BOUND else value


def _python_binary(
    op: str, lhs: Callable[[Getter], float], rhs: Callable[[Getter], float]
) -> Callable[[Getter], float]:
    if op == "+":
        return lambda get: _clamp(lhs(get) + rhs(get))
    if op == "-":
        return lambda get: _clamp(lhs(get) - rhs(get))
    if op == "*":
        return lambda get: _clamp(lhs(get) * rhs(get))

    def divide(get: Getter) -> float:
        numerator, denominator = lhs(get), rhs(get)
        return _clamp(numerator / denominator) if denominator != 0.0 else 0.0

    return divide


def to_polars(node: Node) -> pl.Expr:
    """The same formula as a Float64 polars expression."""
    match node:
        case Num(value=value):
            return pl.lit(value, dtype=pl.Float64)
        case Ref(name=name):
            return pl.col(name).cast(pl.Float64)
        case Neg(operand=operand):
            return -to_polars(operand)
        case BinOp(op=op, left=left, right=right):
            return _polars_binary(op, to_polars(left), to_polars(right))
        case Call(function=function, args=args):
            exprs = [to_polars(a) for a in args]
            result = exprs[0]
            for expr in exprs[1:]:
                result = pl.min_horizontal(result, expr) if function == "min" else pl.max_horizontal(result, expr)
            return result


def _polars_binary(op: str, lhs: pl.Expr, rhs: pl.Expr) -> pl.Expr:
    if op == "/":
        return pl.when(rhs == 0.0).then(pl.lit(0.0)).otherwise((lhs / rhs).clip(-BOUND, BOUND))
    result = lhs + rhs if op == "+" else lhs - rhs if op == "-" else lhs * rhs
    return result.clip(-BOUND, BOUND)
