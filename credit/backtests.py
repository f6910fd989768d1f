"""Risk analytics over stored data: backtests of a version on past applications,
the champion/challenger comparison, population stability of live applicants,
and the proactive relief list.

The heavy part of each (polars over hundreds of thousands of rows) runs in the
CPU pool through module-level functions that take and return plain bytes and
paths, so the event loop only reads the database and encodes answers. The
backtest history is generated once (``HISTORY_ROWS`` synthetic applications,
``credit.engine.history``) under the var directory and reused; it is also the
baseline population of the stability index, being the population every
version is backtested on.
"""

from __future__ import annotations

import hashlib
import os
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import msgspec
import polars as pl

from app import audit
from app.cpu import run_cpu
from app.security import Principal
from app.settings import get_settings
from credit.engine.backtest import BacktestReport, run_backtest
from credit.engine.features import FEATURE_SCHEMA, Features
from credit.engine.history import generate_history, read_history, write_history
from credit.engine.psi import PsiResult, population_stability
from credit.engine.records import MONTHS, month_column, month_index
from credit.engine.relief import relief_candidates
from credit.engine.rules import compiled, ruleset_from_json
from credit.rulesets import body_of, body_sha256, get_version, published_version
from credit.schemas import (
    BacktestOut,
    PsiReportOut,
    ReliefCandidateOut,
    yuan,
)
from credit.tables import BacktestRun, Decision, TaxFiling, Taxpayer

HISTORY_ROWS: Final = 200_000
HISTORY_SEED: Final = 20240601
MIN_LIVE: Final = 100
"""Below this many live decisions a stability index is reported as unreliable."""
_reports = msgspec.json.Encoder()


def history_path() -> Path:
    return Path(get_settings().var_dir) / "credit" / f"history-{HISTORY_ROWS}-{HISTORY_SEED}.parquet"


# --- in the CPU pool ---------------------------------------------------------------------------

_frames: dict[str, tuple[float, pl.DataFrame]] = {}


def _history(path: str) -> pl.DataFrame:
    """The history file, generated on first use and kept in this worker's memory."""
    target = Path(path)
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(f".{os.getpid()}.tmp.parquet")
        write_history(generate_history(HISTORY_ROWS, HISTORY_SEED), partial)
        partial.replace(target)  # atomic: a reader never sees half a file
    stamp = target.stat().st_mtime
    cached = _frames.get(path)
    if cached is None or cached[0] != stamp:
        _frames[path] = (stamp, read_history(target))
    return _frames[path][1]


def _file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def backtest_in_pool(path: str, challenger_json: str, champion_json: str | None) -> tuple[bytes, int, str]:
    """Report JSON, history size and the history file's sha256."""
    history = _history(path)
    champion = compiled(ruleset_from_json(champion_json)) if champion_json is not None else None
    report = run_backtest(history, compiled(ruleset_from_json(challenger_json)), champion)
    return _reports.encode(report), history.height, _file_sha256(path)


def psi_in_pool(path: str, live_json: bytes) -> tuple[bytes, int]:
    """Stability index of each feature of the live snapshots against the history."""
    history = _history(path)
    live_rows = msgspec.json.decode(live_json, type=list[Features])
    live = pl.DataFrame([msgspec.structs.asdict(f) for f in live_rows], schema=FEATURE_SCHEMA, orient="row")
    results = population_stability(history.select(list(FEATURE_SCHEMA)), live)
    return _reports.encode(results), history.height


# --- backtests ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Backtested:
    """A backtest's outcome, computed outside any transaction (it takes seconds of CPU)."""

    version_id: int
    champion_id: int | None
    body_sha256: str
    history: str
    history_sha256: str
    applications: int
    report_json: bytes


async def run(version_id: int) -> Backtested:
    """Run a version on the history against the published version of its product
    (or, with none published or when it is the published one, against the
    decisions the history records)."""
    row = await get_version(version_id)
    champion = await published_version(row.product)
    if champion is not None and champion.id == row.id:
        champion = None  # the published version against itself says nothing: compare with history
    path = history_path()
    report_json, applications, sha = await run_cpu(
        backtest_in_pool,
        str(path),
        msgspec.json.encode(body_of(row)).decode(),
        msgspec.json.encode(body_of(champion)).decode() if champion is not None else None,
    )
    return Backtested(
        row.id,
        champion.id if champion is not None else None,
        body_sha256(row),
        path.name,
        sha,
        applications,
        report_json,
    )


async def keep(principal: Principal, done: Backtested) -> BacktestOut:
    """Store the report (inside the caller's transaction), so the approver sees what the author saw."""
    stored = BacktestRun(
        ruleset=done.version_id,
        champion=done.champion_id,
        body_sha256=done.body_sha256,
        history=done.history,
        history_sha256=done.history_sha256,
        applications=done.applications,
        report=done.report_json.decode(),
        created_by=principal.account_id,
        created_at=datetime.now(UTC),
    )
    await stored.save()
    await audit.record(
        "credit.backtest_run",
        "ruleset_version",
        done.version_id,
        detail={"backtest": stored.id, "champion": done.champion_id, "history_sha256": done.history_sha256},
    )
    return _backtest_out(stored)


def _backtest_out(run: BacktestRun) -> BacktestOut:
    report = run.report
    return BacktestOut(
        id=run.id,
        ruleset_id=run.ruleset,
        champion_id=run.champion,
        history=run.history,
        applications=run.applications,
        created_at=run.created_at,
        report=msgspec.json.decode(report, type=BacktestReport),
    )


async def latest_backtest(version_id: int) -> BacktestOut | None:
    """The latest backtest of the version's table as it stands (none after an edit)."""
    row = await get_version(version_id)
    found = (
        await BacktestRun.objects()
        .where((BacktestRun.ruleset == version_id) & (BacktestRun.body_sha256 == body_sha256(row)))
        .order_by(BacktestRun.id, ascending=False)
        .first()
    )
    return _backtest_out(found) if found is not None else None


# --- population stability ----------------------------------------------------------------------


async def psi_report(product: str, days: int) -> PsiReportOut:
    """Each feature of the product's live decisions over the last ``days``
    against the backtest history, with the customary bands."""
    since = datetime.now(UTC) - timedelta(days=days)
    rows = await Decision.select(Decision.features).where(
        (Decision.product == product) & (Decision.decided_at >= since)
    )
    live = b"[" + b",".join(_bytes(r["features"]) for r in rows) + b"]"
    path = history_path()
    results: list[PsiResult] = []
    baseline = 0
    if rows:
        encoded, baseline = await run_cpu(psi_in_pool, str(path), live)
        results = msgspec.json.decode(encoded, type=list[PsiResult])
    return PsiReportOut(
        product=product,
        baseline=path.name,
        baseline_applications=baseline,
        live_applications=len(rows),
        since=since,
        reliable=len(rows) >= MIN_LIVE,
        features=results,
    )


def _bytes(value: Any) -> bytes:
    return value.encode() if isinstance(value, str) else msgspec.json.encode(value)


# --- proactive relief -----------------------------------------------------------------------------


async def relief_list(drop_share: float, months: int) -> list[ReliefCandidateOut]:
    """Borrowers (taxpayers with an approved application) whose stored sales of
    the last ``months`` fell by more than ``drop_share`` against a year before."""
    borrowers = await Decision.select(Decision.application.taxpayer.as_alias("taxpayer")).where(
        Decision.outcome == "approve"
    )
    pks = sorted({int(r["taxpayer"]) for r in borrowers})
    if not pks:
        return []
    taxpayers = {
        r["id"]: r
        for r in await Taxpayer.select(
            Taxpayer.id, Taxpayer.taxpayer_id, Taxpayer.name, Taxpayer.industry, Taxpayer.customer
        ).where(Taxpayer.id.is_in(pks))
    }
    filings: dict[int, dict[str, int]] = defaultdict(dict)
    for f in await TaxFiling.select(TaxFiling.taxpayer, TaxFiling.period, TaxFiling.vat_sales_fen).where(
        TaxFiling.taxpayer.is_in(pks)
    ):
        filings[int(f["taxpayer"])][f["period"]] = int(f["vat_sales_fen"])
    wide = pl.DataFrame([_sales_row(taxpayers[pk], filings.get(pk, {})) for pk in pks], schema=_RELIEF_SCHEMA)
    flagged = relief_candidates(wide, drop_share, months)
    return [
        ReliefCandidateOut(
            taxpayer_pk=int(r["taxpayer_pk"]),
            taxpayer_id=r["taxpayer_id"],
            name=r["name"],
            industry=r["industry"],
            customer_id=taxpayers[int(r["taxpayer_pk"])]["customer"],
            latest_period=r["latest_period"],
            recent_sales=yuan(r["recent_sales_fen"]),
            year_before_sales=yuan(r["year_before_sales_fen"]),
            sales_change=round(float(r["sales_change"]), 6),
        )
        for r in flagged.join(wide.select("taxpayer_id", "taxpayer_pk"), on="taxpayer_id").iter_rows(named=True)
    ]


_RELIEF_SCHEMA: Final[dict[str, Any]] = {
    "taxpayer_pk": pl.Int64,
    "taxpayer_id": pl.String,
    "name": pl.String,
    "industry": pl.String,
    "latest_period": pl.String,
    **{month_column("vat_sales_fen", m): pl.Int64 for m in range(1, MONTHS + 1)},
}


def _sales_row(taxpayer: dict[str, Any], sales: dict[str, int]) -> dict[str, Any]:
    """One taxpayer's sales in the wide layout: month 01 is the latest period
    filed, and a month without a filing is empty (it counts as no sales)."""
    latest = max(sales, default=None)
    row: dict[str, Any] = {
        "taxpayer_pk": taxpayer["id"],
        "taxpayer_id": taxpayer["taxpayer_id"],
        "name": taxpayer["name"],
        "industry": taxpayer["industry"],
        "latest_period": latest,
    }
    by_index = {month_index(p): v for p, v in sales.items()}
    top = month_index(latest) if latest else 0
    for m in range(1, MONTHS + 1):
        row[month_column("vat_sales_fen", m)] = by_index.get(top - m + 1) if latest else None
    return row
