"""Population stability: has the live applicant population drifted from the
one the ruleset was backtested on?

For each feature the baseline is cut into bins (deciles of the baseline for
numbers, one bin per category for categories) and the index is
``sum((live% - base%) * ln(live% / base%))`` over the bins. An empty bin
would make the logarithm infinite, so shares are floored at ``EPSILON``, the
usual practice. The bands are the industry's customary ones: below 0.10
stable, 0.10 to 0.25 watch, above 0.25 act.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import pairwise
from typing import Final, Literal

import numpy as np
import polars as pl

from credit.engine.backtest import Report
from credit.engine.features import CATEGORIES, FEATURE_KINDS

Band = Literal["stable", "watch", "act"]
EPSILON: Final = 1e-4
WATCH: Final = 0.10
ACT: Final = 0.25


class PsiBin(Report):
    label: str
    baseline_share: float
    live_share: float


class PsiResult(Report):
    feature: str
    psi: float
    band: Band
    bins: list[PsiBin]


def band(psi: float) -> Band:
    return "stable" if psi < WATCH else "watch" if psi <= ACT else "act"


def index(baseline_shares: Sequence[float], live_shares: Sequence[float]) -> float:
    """The PSI of two distributions over the same bins."""
    total = 0.0
    for expected, actual in zip(baseline_shares, live_shares, strict=True):
        e, a = max(expected, EPSILON), max(actual, EPSILON)
        total += (a - e) * math.log(a / e)
    return total


def _shares(counts: Sequence[int]) -> list[float]:
    whole = sum(counts)
    return [c / whole if whole else 0.0 for c in counts]


def _numeric(baseline: pl.Series, live: pl.Series, bins: int) -> tuple[list[str], list[int], list[int]]:
    base = baseline.cast(pl.Float64).to_numpy()
    edges = np.unique(np.quantile(base, np.linspace(0, 1, bins + 1)[1:-1])) if len(base) else np.array([])
    labels = [f"< {edges[0]:.6g}"] if len(edges) else ["all"]
    labels += [f"[{lo:.6g}, {hi:.6g})" for lo, hi in pairwise(edges)]
    labels += [f">= {edges[-1]:.6g}"] if len(edges) else []

    def counts(values: np.ndarray) -> list[int]:
        return [int(c) for c in np.bincount(np.searchsorted(edges, values, side="right"), minlength=len(edges) + 1)]

    return labels, counts(base), counts(live.cast(pl.Float64).to_numpy())


def _categorical(feature: str, baseline: pl.Series, live: pl.Series) -> tuple[list[str], list[int], list[int]]:
    labels = list(CATEGORIES.get(feature, ())) or sorted(set(baseline.cast(pl.String)) | set(live.cast(pl.String)))

    def counts(values: pl.Series) -> list[int]:
        found = dict(values.cast(pl.String).value_counts().iter_rows())
        return [int(found.get(label, 0)) for label in labels]

    return labels, counts(baseline), counts(live)


def population_stability(
    baseline: pl.DataFrame, live: pl.DataFrame, features: Sequence[str] | None = None, bins: int = 10
) -> list[PsiResult]:
    """PSI of each feature (all the features both frames have, by default)."""
    names = (
        features if features is not None else [f for f in FEATURE_KINDS if f in baseline.columns and f in live.columns]
    )
    results = []
    for name in names:
        if FEATURE_KINDS.get(name) == "category" or baseline.schema[name] in (pl.String, pl.Categorical):
            labels, base, now = _categorical(name, baseline[name], live[name])
        else:
            labels, base, now = _numeric(baseline[name], live[name], bins)
        b, n = _shares(base), _shares(now)
        psi = round(index(b, n), 6)
        results.append(
            PsiResult(
                feature=name,
                psi=psi,
                band=band(psi),
                bins=[PsiBin(label, round(x, 6), round(y, 6)) for label, x, y in zip(labels, b, n, strict=True)],
            )
        )
    return results
