"""Deciding with a decision table: one application, or a whole frame at once.

A validated ``Ruleset`` compiles once into Python closures (live path, a few
microseconds a decision) and polars expressions (backtests, a million rows in
well under a second). Both are generated from the same compiled rows and spell
out the same semantics, and a hypothesis property test
(``tests/unit/credit/test_rules_differential.py``) checks that random
rulesets give identical outcomes, limits, tiers and reasons on both paths.

Hit policies:

* ``first``: the first row whose conditions all hold decides outcome, limit
  formula, price tier and reasons; no hit means the defaults.
* ``collect``: every row that holds contributes. The outcome is the most
  severe hit (decline > refer > approve), reasons are all hit rows' codes in
  row order without repeats, the limit is the smallest of the default formula
  and the hit rows' formulas, the tier is the first hit row's tier; no hit
  means the defaults.

Either way a decline has limit 0 and no tier, and limits are clipped to
``[0, max_limit_fen]`` and rounded down to ``limit_step_fen``.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Final

import msgspec
import polars as pl

from app.schemas import Base
from credit.engine import formula
from credit.engine.features import FEATURE_KINDS, Features
from credit.engine.ruleset import (
    NUMERIC_FEATURES,
    OUTCOMES,
    Condition,
    Outcome,
    Ruleset,
    check_ruleset,
    load_ruleset,
    ruleset_from_json,
    ruleset_issues,
    ruleset_to_json,
    save_ruleset,
)

__all__ = [
    "Decision",
    "Ruleset",
    "check_ruleset",
    "compile_ruleset",
    "decide",
    "decide_frame",
    "load_ruleset",
    "ruleset_from_json",
    "ruleset_issues",
    "ruleset_to_json",
    "save_ruleset",
]

SEVERITY: Final = {outcome: rank for rank, outcome in enumerate(OUTCOMES)}
OUTCOME_DTYPE: Final = pl.Enum(OUTCOMES)
_COMPARE: Final[dict[str, Callable[[Any, Any], Any]]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


class Decision(Base):
    """A decision as stored with its application: enough, with the feature
    snapshot, to replay it against the same ruleset version."""

    outcome: Outcome
    limit_fen: int
    price_tier: str | None
    reasons: list[str]
    rows_hit: list[int]
    """Indexes of the rows that hit (``first``: at most one); empty means the defaults."""
    product: str
    ruleset_version: str


Predicate = Callable[[Features], bool]
Limit = Callable[[formula.Getter], float]


@dataclass(frozen=True, slots=True)
class Terms:
    """What a row (or the defaults) says, compiled for both paths."""

    outcome: Outcome
    limit: Limit | None
    limit_expr: pl.Expr | None
    limit_text: str | None
    price_tier: str | None
    reasons: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class CompiledRow:
    index: int
    predicates: tuple[Predicate, ...]
    mask: pl.Expr
    terms: Terms

    def holds(self, features: Features) -> bool:
        return all(p(features) for p in self.predicates)


@dataclass(frozen=True, slots=True)
class CompiledRuleset:
    ruleset: Ruleset
    rows: tuple[CompiledRow, ...]
    defaults: Terms
    collect: bool


def compile_ruleset(ruleset: Ruleset) -> CompiledRuleset:
    """Validate and compile; the service keeps the result for a published version."""
    check_ruleset(ruleset)
    constants = {name: float(value) for name, value in ruleset.constants.items()}

    def terms(outcome: str, limit: str | None, tier: str | None, reasons: list[str]) -> Terms:
        tree = formula.parse(limit, NUMERIC_FEATURES, constants) if limit is not None else None
        return Terms(
            outcome=_outcome(outcome),
            limit=formula.to_python(tree) if tree is not None else None,
            limit_expr=formula.to_polars(tree) if tree is not None else None,
            limit_text=limit,
            price_tier=tier,
            reasons=tuple(reasons),
        )

    rows = tuple(
        CompiledRow(
            index=i,
            predicates=tuple(_predicate(c) for c in row.conditions),
            mask=pl.all_horizontal([_mask(c) for c in row.conditions]) if row.conditions else pl.lit(True),
            terms=terms(row.outcome, row.limit, row.price_tier, row.reasons),
        )
        for i, row in enumerate(ruleset.rows)
    )
    d = ruleset.defaults
    return CompiledRuleset(
        ruleset, rows, terms(d.outcome, d.limit, d.price_tier, d.reasons), ruleset.hit_policy == "collect"
    )


def _outcome(value: str) -> Outcome:
    for outcome in ("approve", "refer", "decline"):
        if value == outcome:
            return outcome
    raise ValueError(f"outcome: {value!r}")  # unreachable after validation


def _predicate(condition: Condition) -> Predicate:
    get = operator.attrgetter(condition.feature)
    op, value = condition.op, condition.value
    if op == "between":
        assert isinstance(value, list)
        low, high = value
        return lambda f: bool(low <= get(f) <= high)
    if op in ("in", "not in"):
        assert isinstance(value, list)
        members = frozenset(value)
        return (lambda f: get(f) in members) if op == "in" else (lambda f: get(f) not in members)
    compare = _COMPARE[op]
    return lambda f: bool(compare(get(f), value))


def _mask(condition: Condition) -> pl.Expr:
    column, op, value = pl.col(condition.feature), condition.op, condition.value
    if op == "between":
        assert isinstance(value, list)
        return (column >= value[0]) & (column <= value[1])
    if op in ("in", "not in"):
        assert isinstance(value, list)
        inside = column.is_in(value)
        return inside if op == "in" else ~inside
    mask: pl.Expr = _COMPARE[op](column, value)
    return mask


@lru_cache(maxsize=64)
def _compiled_for(key: bytes) -> CompiledRuleset:
    return compile_ruleset(msgspec.json.decode(key, type=Ruleset))


def compiled(ruleset: Ruleset | CompiledRuleset) -> CompiledRuleset:
    """The compiled form, cached by content: a ruleset edited after compiling
    gets a new entry rather than a stale one."""
    if isinstance(ruleset, CompiledRuleset):
        return ruleset
    return _compiled_for(msgspec.json.encode(ruleset))


def finish_limit(value: float, ruleset: Ruleset) -> int:
    """A formula's value as whole fen: clipped to [0, max] and rounded down to the step."""
    fen = math.floor(min(max(value, 0.0), float(ruleset.max_limit_fen)))
    return fen // ruleset.limit_step_fen * ruleset.limit_step_fen


def _finish_limit_expr(expr: pl.Expr, ruleset: Ruleset) -> pl.Expr:
    """``finish_limit`` for a column: the float becomes integer fen first, then
    the step is integer arithmetic, exact on both paths."""
    fen = expr.clip(0.0, float(ruleset.max_limit_fen)).floor().cast(pl.Int64)
    return fen // ruleset.limit_step_fen * ruleset.limit_step_fen


def decide(ruleset: Ruleset | CompiledRuleset, features: Features) -> Decision:
    """Decide one application on its feature snapshot."""
    c = compiled(ruleset)

    def get(name: str) -> float:
        return float(getattr(features, name))

    if c.collect:
        hits = [row for row in c.rows if row.holds(features)]
    else:
        first = next((row for row in c.rows if row.holds(features)), None)
        hits = [first] if first is not None else []
    d = c.defaults
    if not hits:
        outcome, reasons, tier = d.outcome, list(d.reasons), d.price_tier
    else:
        outcome = max((row.terms.outcome for row in hits), key=SEVERITY.__getitem__)
        reasons = list(dict.fromkeys(reason for row in hits for reason in row.terms.reasons))
        tier = next((row.terms.price_tier for row in hits if row.terms.price_tier is not None), d.price_tier)
    if outcome == "decline":
        limit_fen, tier = 0, None
    elif c.collect:
        assert d.limit is not None
        value = d.limit(get)
        for row in hits:
            if row.terms.limit is not None:
                value = min(value, row.terms.limit(get))
        limit_fen = finish_limit(value, c.ruleset)
    else:
        chosen = hits[0].terms.limit if hits and hits[0].terms.limit is not None else d.limit
        assert chosen is not None
        limit_fen = finish_limit(chosen(get), c.ruleset)
    return Decision(
        outcome=outcome,
        limit_fen=limit_fen,
        price_tier=tier,
        reasons=reasons,
        rows_hit=[row.index for row in hits],
        product=c.ruleset.product,
        ruleset_version=c.ruleset.version,
    )


def decide_frame(
    ruleset: Ruleset | CompiledRuleset, features: pl.DataFrame | pl.LazyFrame, *, reasons: bool = True
) -> pl.DataFrame:
    """Decide every row of a feature frame (``features.FEATURE_SCHEMA`` columns).

    Returns ``outcome`` (Enum), ``limit_fen`` (Int64), ``price_tier`` (String,
    null for declines) and, unless ``reasons=False`` (backtests do not need
    them and they cost most of the time), ``reasons`` (List of String), in the
    input's row order.
    """
    c = compiled(ruleset)
    frame = features.lazy()
    missing = [name for name in FEATURE_KINDS if name not in frame.collect_schema()]
    if missing:
        raise ValueError(f"feature frame lacks {', '.join(missing)}")
    masks = [f"_m{row.index}" for row in c.rows]
    return (
        frame.with_columns(row.mask.alias(name) for row, name in zip(c.rows, masks, strict=True))
        .with_columns(_key_columns(c, masks))
        .select(_decision_exprs(c, masks, reasons))
        .collect()
    )


def _key_columns(c: CompiledRuleset, masks: list[str]) -> list[pl.Expr]:
    """``_sev`` (the outcome's severity) and, for ``first``, ``_hit`` (the row
    that hit, -1 for none): computed once and read by every output column."""
    d = c.defaults
    rows = list(zip(c.rows, (pl.col(m) for m in masks), strict=True))
    if not c.collect:
        hit = _first_of([(m, r.index) for r, m in rows], -1, pl.Int32())
        severity = _first_of([(m, SEVERITY[r.terms.outcome]) for r, m in rows], SEVERITY[d.outcome], pl.Int8())
        return [hit.alias("_hit"), severity.alias("_sev")]

    def hit_any(outcome: str | None) -> pl.Expr:
        chosen = [m for r, m in rows if outcome is None or r.terms.outcome == outcome]
        return pl.any_horizontal(chosen) if chosen else pl.lit(False)

    severity = _first_of(
        [(hit_any("decline"), SEVERITY["decline"]), (hit_any("refer"), SEVERITY["refer"]), (hit_any(None), 0)],
        SEVERITY[d.outcome],
        pl.Int8(),
    )
    return [severity.alias("_sev")]


def _decision_exprs(c: CompiledRuleset, masks: list[str], with_reasons: bool) -> list[pl.Expr]:
    d = c.defaults
    rows = list(zip(c.rows, (pl.col(m) for m in masks), strict=True))
    severity = pl.col("_sev")
    if c.collect:
        # the smallest of the default formula and those of the rows that hit; each distinct formula once
        by_formula: dict[str, tuple[list[pl.Expr], pl.Expr]] = {}
        for r, m in rows:
            if r.terms.limit_text is not None and r.terms.limit_expr is not None:
                by_formula.setdefault(r.terms.limit_text, ([], r.terms.limit_expr))[0].append(m)
        limit = pl.min_horizontal(
            _expr(d.limit_expr),
            *(pl.when(pl.any_horizontal(ms)).then(f).otherwise(math.inf) for ms, f in by_formula.values()),
        )
        tier = _first_of([(m, r.terms.price_tier) for r, m in rows if r.terms.price_tier is not None], d.price_tier)
        any_hit = pl.any_horizontal([m for _, m in rows]) if rows else pl.lit(False)
        reason_lists = [pl.when(m).then(_strings(r.terms.reasons)).otherwise(_strings(())) for r, m in rows]
        reasons = (
            pl.when(any_hit)
            .then(pl.concat_list(reason_lists).list.unique(maintain_order=True) if rows else _strings(()))
            .otherwise(_strings(d.reasons))
        )
    else:
        hit = pl.col("_hit")
        own = [r for r, _ in rows if r.terms.outcome != "decline"]
        limit = _by_hit(hit, [(r.index, r.terms.limit_text, r.terms.limit_expr) for r in own], _expr(d.limit_expr))
        tier = _by_hit(hit, [(r.index, r.terms.price_tier, r.terms.price_tier) for r in own], d.price_tier)
        reasons = _by_hit(
            hit, [(r.index, r.terms.reasons, _strings(r.terms.reasons)) for r, _ in rows], _strings(d.reasons)
        )
    decline = severity == SEVERITY["decline"]
    exprs = [
        severity.replace_strict(list(SEVERITY.values()), list(SEVERITY), return_dtype=OUTCOME_DTYPE).alias("outcome"),
        pl.when(decline).then(pl.lit(0, pl.Int64)).otherwise(_finish_limit_expr(limit, c.ruleset)).alias("limit_fen"),
        pl.when(decline).then(pl.lit(None, pl.String)).otherwise(tier).cast(pl.String).alias("price_tier"),
    ]
    if with_reasons:
        exprs.append(reasons.alias("reasons"))
    return exprs


def _expr(expr: pl.Expr | None) -> pl.Expr:
    assert expr is not None
    return expr


def _by_hit(hit: pl.Expr, rows: list[tuple[int, Any, Any]], default: Any) -> pl.Expr:
    """The value of the row that hit, for ``first``: rows saying the same thing
    (same formula text, tier or reasons) share one branch, so each distinct
    formula is evaluated once per frame, not once per row."""
    groups: dict[Any, tuple[list[int], Any]] = {}
    for index, key, value in rows:
        if key is not None:
            groups.setdefault(key, ([], value))[0].append(index)
    return _first_of([(hit.is_in(indexes), value) for indexes, value in groups.values()], default)


def _strings(values: tuple[str, ...]) -> pl.Expr:
    return pl.lit(pl.Series([list(values)], dtype=pl.List(pl.String)))


def _first_of(cases: list[tuple[pl.Expr, Any]], default: Any, dtype: pl.DataType | None = None) -> pl.Expr:
    """``when(m0).then(v0).when(m1).then(v1)...otherwise(default)``: the first hit wins."""

    def lit(value: Any) -> pl.Expr:
        return value if isinstance(value, pl.Expr) else pl.lit(value, dtype)

    if not cases:
        return lit(default)
    chain: Any = pl
    for mask, value in cases:
        chain = chain.when(mask).then(lit(value))
    return chain.otherwise(lit(default))  # type: ignore[no-any-return]
