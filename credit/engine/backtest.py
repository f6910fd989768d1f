"""Backtests: what a draft ruleset would have done to past applications.

``run_backtest`` decides every historical application with the draft (and
with the champion: a published ruleset, or else the decisions recorded in the
history) and reports approval, bad and loss figures overall, per grade and per
industry, with the swap-in / swap-out matrix. All the per-row work is polars;
the metrics come from one group-by over (grade, industry, champion outcome,
challenger outcome), at most a few hundred groups, which Python then folds
into every view with exact integer sums. A million applications take about a
tenth of a second on one core.

Definitions, per ruleset: an approved application's exposure is
``min(requested_fen, limit_fen)``; its realised loss is ``exposure * lgd_bp /
10000`` (integer fen, rounded down) when it defaulted; its expected loss is
``pd * lgd * exposure`` rounded to the fen per application. The bad rate is
defaults among approved applications. Referred applications count in the
refer rate but not in the book: their fate is a person's decision.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Final

import msgspec
import polars as pl

from credit.engine.rules import CompiledRuleset, Ruleset, compiled, decide_frame

LOSS_COLUMNS: Final = ("grade", "industry", "requested_fen", "pd", "lgd_bp", "defaulted")
HISTORICAL: Final = "historical decisions"


class Report(msgspec.Struct, forbid_unknown_fields=True):
    """Reports keep snake_case keys: they are read by people and by scripts
    through the CLI (``elapsed_seconds`` is part of its contract), and money
    is integer fen like everywhere else."""


class Metrics(Report):
    applications: int
    approved: int
    referred: int
    declined: int
    approval_rate: float
    refer_rate: float
    decline_rate: float
    bads: int
    """Defaults among approved applications."""
    bad_rate: float | None
    approved_exposure_fen: int
    expected_loss_fen: int
    realised_loss_fen: int
    loss_rate: float | None
    """Realised loss over approved exposure."""
    average_limit_fen: int | None


class RulesetResult(Report):
    ruleset: str
    overall: Metrics
    by_grade: dict[str, Metrics]
    by_industry: dict[str, Metrics]


class SwapCell(Report):
    champion: str
    challenger: str
    applications: int
    bads: int
    bad_rate: float | None
    """Defaults among all the cell's applications, approved or not (known in history)."""


class SwapSet(Report):
    applications: int
    bads: int
    bad_rate: float | None
    realised_loss_fen: int
    """For swap-ins the loss the challenger takes on, for swap-outs the loss it avoids."""


class Swap(Report):
    champion: str
    matrix: list[SwapCell]
    swap_in: SwapSet
    """Approved by the challenger, not by the champion."""
    swap_out: SwapSet
    """Approved by the champion, not by the challenger."""


class BacktestReport(Report):
    applications: int
    challenger: RulesetResult
    champion: RulesetResult | None
    swap: Swap | None
    elapsed_seconds: float
    """Deciding and measuring, after the history is in memory (loading it is not included)."""


@dataclass(slots=True)
class _Tally:
    applications: int = 0
    approved: int = 0
    referred: int = 0
    declined: int = 0
    bads: int = 0
    exposure: int = 0
    expected_loss: int = 0
    realised_loss: int = 0
    limits: int = 0

    def metrics(self) -> Metrics:
        n, ok = self.applications, self.approved
        return Metrics(
            applications=n,
            approved=ok,
            referred=self.referred,
            declined=self.declined,
            approval_rate=_rate(ok, n) or 0.0,
            refer_rate=_rate(self.referred, n) or 0.0,
            decline_rate=_rate(self.declined, n) or 0.0,
            bads=self.bads,
            bad_rate=_rate(self.bads, ok),
            approved_exposure_fen=self.exposure,
            expected_loss_fen=self.expected_loss,
            realised_loss_fen=self.realised_loss,
            loss_rate=_rate(self.realised_loss, self.exposure),
            average_limit_fen=(2 * self.limits + ok) // (2 * ok) if ok else None,
        )


@dataclass(slots=True)
class _Side:
    label: str
    prefix: str
    overall: _Tally = field(default_factory=_Tally)
    by_grade: defaultdict[str, _Tally] = field(default_factory=lambda: defaultdict(_Tally))
    by_industry: defaultdict[str, _Tally] = field(default_factory=lambda: defaultdict(_Tally))

    def add(self, group: dict[str, object]) -> None:
        outcome = group[f"{self.prefix}outcome"]
        n, bads = _int(group["n"]), _int(group["defaults"])
        for tally in (self.overall, self.by_grade[str(group["grade"])], self.by_industry[str(group["industry"])]):
            tally.applications += n
            if outcome == "approve":
                tally.approved += n
                tally.bads += bads
                tally.exposure += _int(group[f"{self.prefix}exposure"])
                tally.expected_loss += _int(group[f"{self.prefix}el"])
                tally.realised_loss += _int(group[f"{self.prefix}loss"])
                tally.limits += _int(group[f"{self.prefix}limits"])
            elif outcome == "refer":
                tally.referred += n
            else:
                tally.declined += n

    def result(self) -> RulesetResult:
        return RulesetResult(
            ruleset=self.label,
            overall=self.overall.metrics(),
            by_grade={key: tally.metrics() for key, tally in sorted(self.by_grade.items())},
            by_industry={key: tally.metrics() for key, tally in sorted(self.by_industry.items())},
        )


def _int(value: object) -> int:
    assert isinstance(value, int)
    return value


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 6) if whole else None


def _side_exprs(prefix: str) -> list[pl.Expr]:
    approved = pl.col(f"{prefix}outcome") == "approve"
    exposure = pl.when(approved).then(pl.min_horizontal("requested_fen", f"{prefix}limit_fen")).otherwise(0)
    return [
        exposure.sum().alias(f"{prefix}exposure"),
        pl.when(pl.col("defaulted"))
        .then(exposure * pl.col("lgd_bp") // 10_000)
        .otherwise(0)
        .sum()
        .alias(f"{prefix}loss"),
        (pl.col("pd") * pl.col("lgd_bp").cast(pl.Float64) / 10_000.0 * exposure.cast(pl.Float64))
        .round()
        .cast(pl.Int64)
        .sum()
        .alias(f"{prefix}el"),
        pl.when(approved).then(pl.col(f"{prefix}limit_fen")).otherwise(0).sum().alias(f"{prefix}limits"),
    ]


def summarise(decided: pl.DataFrame, challenger: str, champion: str | None = None) -> BacktestReport:
    """Metrics of a decided frame: ``LOSS_COLUMNS`` plus ``outcome`` and
    ``limit_fen`` and, to compare, ``champion_outcome`` and ``champion_limit_fen``.
    ``elapsed_seconds`` is left at 0 for the caller to fill."""
    keys = ["grade", "industry", "outcome", *(["champion_outcome"] if champion is not None else [])]
    aggs = [pl.len().alias("n"), pl.col("defaulted").sum().cast(pl.Int64).alias("defaults"), *_side_exprs("")]
    if champion is not None:
        aggs += _side_exprs("champion_")
    groups = decided.group_by(keys).agg(aggs).to_dicts()
    sides = [_Side(challenger, "")] + ([_Side(champion, "champion_")] if champion is not None else [])
    for group in groups:
        for side in sides:
            side.add(group)
    return BacktestReport(
        applications=decided.height,
        challenger=sides[0].result(),
        champion=sides[1].result() if champion is not None else None,
        swap=_swap(groups, champion) if champion is not None else None,
        elapsed_seconds=0.0,
    )


def _swap(groups: list[dict[str, object]], champion: str) -> Swap:
    cells: defaultdict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    swap_in, swap_out = [0, 0, 0], [0, 0, 0]
    for g in groups:
        old, new, n, bads = str(g["champion_outcome"]), str(g["outcome"]), _int(g["n"]), _int(g["defaults"])
        cell = cells[(old, new)]
        cell[0] += n
        cell[1] += bads
        if new == "approve" and old != "approve":
            swap_in = [swap_in[0] + n, swap_in[1] + bads, swap_in[2] + _int(g["loss"])]
        elif old == "approve" and new != "approve":
            swap_out = [swap_out[0] + n, swap_out[1] + bads, swap_out[2] + _int(g["champion_loss"])]
    order = {"approve": 0, "refer": 1, "decline": 2}
    matrix = [
        SwapCell(champion=old, challenger=new, applications=n, bads=bads, bad_rate=_rate(bads, n))
        for (old, new), (n, bads) in sorted(cells.items(), key=lambda item: (order[item[0][0]], order[item[0][1]]))
    ]

    def swap_set(values: list[int]) -> SwapSet:
        return SwapSet(
            applications=values[0], bads=values[1], bad_rate=_rate(values[1], values[0]), realised_loss_fen=values[2]
        )

    return Swap(champion=champion, matrix=matrix, swap_in=swap_set(swap_in), swap_out=swap_set(swap_out))


def label(ruleset: Ruleset | CompiledRuleset) -> str:
    rs = compiled(ruleset).ruleset
    return f"{rs.product} {rs.version}"


def run_backtest(
    history: pl.DataFrame, challenger: Ruleset | CompiledRuleset, champion: Ruleset | CompiledRuleset | None = None
) -> BacktestReport:
    """Decide ``history`` (``history.HISTORY_SCHEMA``) with ``challenger`` and compare.

    Without a ``champion`` ruleset the history's own ``historical_outcome`` and
    ``granted_fen`` are the champion, when the file has them.
    """
    started = time.perf_counter()
    new, old = compiled(challenger), compiled(champion) if champion is not None else None
    decided = decide_frame(new, history, reasons=False)
    frame = history.select(LOSS_COLUMNS).with_columns(decided["outcome"], decided["limit_fen"])
    champion_label: str | None = None
    if old is not None:
        before = decide_frame(old, history, reasons=False)
        frame = frame.with_columns(
            before["outcome"].alias("champion_outcome"), before["limit_fen"].alias("champion_limit_fen")
        )
        champion_label = label(old)
    elif "historical_outcome" in history.columns:
        frame = frame.with_columns(
            history["historical_outcome"].alias("champion_outcome"), history["granted_fen"].alias("champion_limit_fen")
        )
        champion_label = HISTORICAL
    report = summarise(frame, label(new), champion_label)
    return msgspec.structs.replace(report, elapsed_seconds=round(time.perf_counter() - started, 4))
