"""Decision tables as risk officers write them, and their validation.

The JSON is what the browser editor loads and saves, so validation reports
every problem at once, each at the path of its cell in the wire spelling
(``rows[3].conditions[1].value``, ``defaults.limit``), instead of stopping at
the first. Fields an officer types (operators, outcomes, reason codes) are
plain strings in the Struct for that reason: a bad one becomes a cell error
next to the others rather than a decode error that hides them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final, Literal, get_args

import msgspec

from app.errors import FieldError
from app.schemas import Base
from credit.engine import formula
from credit.engine.errors import RulesetInvalid
from credit.engine.features import CATEGORIES, FEATURE_KINDS

Outcome = Literal["approve", "refer", "decline"]
OUTCOMES: Final[tuple[str, ...]] = get_args(Outcome)
"""In order of severity: ``collect`` keeps the most severe outcome that hits."""
HitPolicy = Literal["first", "collect"]
HIT_POLICIES: Final[tuple[str, ...]] = get_args(HitPolicy)
OPS: Final = ("==", "!=", "<", "<=", ">", ">=", "in", "not in", "between")
ORDERING_OPS: Final = frozenset({"<", "<=", ">", ">="})
MAX_ROWS: Final = 200
MAX_CONDITIONS: Final = 20
MAX_LIMIT_FEN: Final = 10**13
NUMERIC_FEATURES: Final = frozenset(name for name, kind in FEATURE_KINDS.items() if kind != "category")

_REASON = re.compile(r"^[A-Z][A-Z0-9_]{1,39}$")
_TIER = re.compile(r"^[A-Za-z0-9_-]{1,16}$")
_PRODUCT = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,39}$")
_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,39}$")
_DECODE_AT = re.compile(r"^(.*) - at `\$\.?(.*)`$")

_Report = Callable[[str, str], None]
Value = int | float | str | list[int | float | str]


class Condition(Base):
    """``feature op value``; ``between`` takes ``[low, high]``, both included."""

    feature: str
    op: str
    value: Value


class Row(Base, omit_defaults=True):
    outcome: str
    conditions: list[Condition] = []
    """All must hold for the row to hit; none means the row always hits."""
    limit: str | None = None
    """A limit formula; when absent the default one applies."""
    price_tier: str | None = None
    reasons: list[str] = []
    note: str = ""


class Defaults(Base, omit_defaults=True):
    """What applies when no row hits, and the limit and tier rows leave open."""

    outcome: str
    limit: str
    price_tier: str | None = None
    reasons: list[str] = []


class Ruleset(Base, kw_only=True):
    """A decision table for one product at one version (lifecycle and four-eyes
    approval live with the service; the file holds what is decided)."""

    product: str
    version: str
    description: str = ""
    hit_policy: str
    max_limit_fen: int
    """A hard ceiling on any limit, whatever a formula says: a mistyped
    multiplier cannot lend more than the product allows."""
    limit_step_fen: int = 100
    """Limits round down to a multiple of this (100 fen = whole yuan)."""
    constants: dict[str, int | float] = {}
    """Named numbers for formulas, e.g. ``{"k": 8, "cap_fen": 300000000}``."""
    rows: list[Row]
    defaults: Defaults


def ruleset_issues(ruleset: Ruleset) -> list[FieldError]:
    """Every problem in ``ruleset``, each at its cell; empty when it is valid."""
    issues: list[FieldError] = []

    def bad(path: str, message: str) -> None:
        issues.append(FieldError(path=path, message=message))

    _check_header(ruleset, bad)
    constants = _check_constants(ruleset.constants, bad)
    if len(ruleset.rows) > MAX_ROWS:
        bad("rows", f"at most {MAX_ROWS} rows")
    catch_all: int | None = None
    for i, row in enumerate(ruleset.rows):
        at = f"rows[{i}]"
        if catch_all is not None and ruleset.hit_policy == "first":
            bad(at, f"never reached: rows[{catch_all}] has no conditions and already matches everything")
        if len(row.conditions) > MAX_CONDITIONS:
            bad(f"{at}.conditions", f"at most {MAX_CONDITIONS} conditions a row")
        for j, condition in enumerate(row.conditions):
            _check_condition(f"{at}.conditions[{j}]", condition, bad)
        _check_terms(at, row, constants, bad)
        if not row.conditions and catch_all is None:
            catch_all = i
    _check_terms("defaults", ruleset.defaults, constants, bad)
    return issues


def _check_header(ruleset: Ruleset, bad: _Report) -> None:
    if not _PRODUCT.match(ruleset.product):
        bad("product", "lower-case letters, digits and _; starts with a letter")
    if not _VERSION.match(ruleset.version):
        bad("version", "letters, digits, '.', '_' and '-', at most 40")
    if ruleset.hit_policy not in HIT_POLICIES:
        bad("hitPolicy", f"must be one of {', '.join(HIT_POLICIES)}")
    if not 0 < ruleset.max_limit_fen <= MAX_LIMIT_FEN:
        bad("maxLimitFen", f"must be between 1 and {MAX_LIMIT_FEN} fen")
    if not 0 < ruleset.limit_step_fen <= max(ruleset.max_limit_fen, 1):
        bad("limitStepFen", "must be at least 1 fen and at most maxLimitFen")


def _check_constants(raw: dict[str, int | float], bad: _Report) -> dict[str, float]:
    """The usable constants; the others are reported."""
    constants: dict[str, float] = {}
    for name, value in raw.items():
        if not _NAME.match(name) or name in FEATURE_KINDS or name in formula.FUNCTIONS:
            bad(f"constants.{name}", "a constant needs a lower-case name that is not a feature or function")
        elif not _in_range(value):
            bad(f"constants.{name}", f"must be a number of magnitude at most {formula.MAX_CONSTANT:g}")
        else:
            constants[name] = float(value)
    return constants


def _check_terms(at: str, terms: Row | Defaults, constants: dict[str, float], bad: _Report) -> None:
    if terms.outcome not in OUTCOMES:
        bad(f"{at}.outcome", f"must be one of {', '.join(OUTCOMES)}")
    if terms.limit is not None:
        try:
            formula.parse(terms.limit, NUMERIC_FEATURES, constants)
        except formula.FormulaError as exc:
            bad(f"{at}.limit", str(exc))
    if terms.price_tier is not None and not _TIER.match(terms.price_tier):
        bad(f"{at}.priceTier", "letters, digits, '_' and '-', at most 16")
    for k, reason in enumerate(terms.reasons):
        if not _REASON.match(reason):
            bad(f"{at}.reasons[{k}]", "a reason code is upper-case letters, digits and _, e.g. GRADE_C_OR_D")
        elif reason in terms.reasons[:k]:
            bad(f"{at}.reasons[{k}]", f"{reason} is already given")
    if terms.outcome in ("refer", "decline") and not terms.reasons:
        bad(f"{at}.reasons", f"a {terms.outcome} must give at least one reason code")


def _check_condition(at: str, condition: Condition, bad: _Report) -> None:
    kind = FEATURE_KINDS.get(condition.feature)
    if kind is None:
        bad(f"{at}.feature", f"unknown feature; one of {', '.join(FEATURE_KINDS)}")
    elif condition.op not in OPS:
        bad(f"{at}.op", f"must be one of {', '.join(OPS)}")
    elif kind == "category":
        _check_category(at, condition, bad)
    elif condition.op in ("in", "not in") and kind == "float":
        bad(f"{at}.op", f"{condition.feature} is a measurement: compare it with <, <=, >, >= or between")
    else:
        message = _number_problem(condition.op, condition.value)
        if message:
            bad(f"{at}.value", message)


def _check_category(at: str, condition: Condition, bad: _Report) -> None:
    domain, value = CATEGORIES[condition.feature], condition.value
    if condition.op in ORDERING_OPS or condition.op == "between":
        bad(f"{at}.op", f"{condition.feature} is a category: use ==, !=, in or not in")
    elif condition.op not in ("in", "not in"):
        if not isinstance(value, str) or value not in domain:
            bad(f"{at}.value", f"one of {', '.join(domain)}")
    elif not isinstance(value, list) or not value:
        bad(f"{at}.value", "a non-empty list of values")
    elif unknown := [v for v in value if v not in domain]:
        bad(f"{at}.value", f"{unknown[0]!r} is not a {condition.feature}; one of {', '.join(domain)}")


def _number_problem(op: str, value: Value) -> str | None:
    """What is wrong with the value of a numeric condition, if anything."""
    values: list[Any] = value if isinstance(value, list) else [value]
    if op == "between":
        shape_ok = isinstance(value, list) and len(value) == 2 and all(_is_number(v) for v in value)
        shape = None if shape_ok else "[low, high]: two numbers"
    elif op in ("in", "not in"):
        shape_ok = isinstance(value, list) and bool(value) and all(_is_int(v) for v in value)
        shape = None if shape_ok else "a non-empty list of whole numbers"
    else:
        shape = None if _is_number(value) else "a number"
    if shape is not None:
        return shape
    if not all(_in_range(v) for v in values):
        return f"numbers of magnitude at most {formula.MAX_CONSTANT:g}"
    if op == "between" and float(values[0]) > float(values[1]):
        return "low must not exceed high"
    return None


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _in_range(value: object) -> bool:
    return isinstance(value, int | float) and math.isfinite(value) and abs(value) <= formula.MAX_CONSTANT


def check_ruleset(ruleset: Ruleset) -> Ruleset:
    """``ruleset`` itself when valid, else ``RulesetInvalid`` with every issue."""
    if issues := ruleset_issues(ruleset):
        raise RulesetInvalid(issues)
    return ruleset


_DECODER = msgspec.json.Decoder(Ruleset)


def ruleset_from_json(data: bytes | str) -> Ruleset:
    """Decode and validate; a structural error (wrong JSON type, unknown or
    missing field) arrives as one ``RulesetInvalid`` at its path too."""
    try:
        ruleset = _DECODER.decode(data)
    except msgspec.ValidationError as exc:
        message, path = str(exc), ""
        if found := _DECODE_AT.match(message):
            message, path = found.group(1), found.group(2)
        raise RulesetInvalid([FieldError(path=path, message=message)]) from None
    except msgspec.DecodeError as exc:
        raise RulesetInvalid([FieldError(path="", message=f"not JSON: {exc}")]) from None
    return check_ruleset(ruleset)


def ruleset_to_json(ruleset: Ruleset) -> bytes:
    """Indented JSON with a trailing newline, the form kept in git and diffed in reviews."""
    return msgspec.json.format(msgspec.json.encode(ruleset), indent=2) + b"\n"


def load_ruleset(path: str | Path) -> Ruleset:
    return ruleset_from_json(Path(path).read_bytes())


def save_ruleset(ruleset: Ruleset, path: str | Path) -> None:
    Path(path).write_bytes(ruleset_to_json(check_ruleset(ruleset)))
