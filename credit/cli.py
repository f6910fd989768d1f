"""The ``credit`` command group: generate histories and backtest rulesets.

Every command prints exactly one JSON object on stdout, results and errors
alike, so scripts (and the contract checks) can parse it without scraping:
exit 0 with the result, 1 with ``{"error", "message", "fields"}`` when the
input is bad (an invalid ruleset names its cells, a bad file its rows and
columns), 2 for a usage error. ``branchless`` attaches this group as
``branchless credit``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import click
import msgspec

_FILE = click.Path(dir_okay=False, path_type=Path)
_EXISTING = click.Path(exists=True, dir_okay=False, path_type=Path)


def _emit(payload: Any) -> None:
    sys.stdout.write(msgspec.json.encode(payload).decode() + "\n")
    sys.stdout.flush()


def _fail(code: str, message: str, fields: list[Any] | None = None, exit_code: int = 1) -> None:
    _emit({"error": code, "message": message, "fields": msgspec.to_builtins(fields or [])})
    sys.exit(exit_code)


class _JsonGroup(click.Group):
    """Turns every failure inside the group into one JSON object on stdout."""

    def invoke(self, ctx: click.Context) -> Any:
        from app.errors import AppError

        try:
            return super().invoke(ctx)
        except click.exceptions.Exit:
            raise
        except click.ClickException as exc:
            _fail("usage", exc.format_message(), exit_code=2)
        except AppError as exc:
            _fail(exc.code, exc.message, exc.fields)
        except (OSError, ValueError) as exc:
            _fail("bad_input", str(exc))
        return None  # pragma: no cover - _fail exits


@click.group(cls=_JsonGroup)
def credit() -> None:
    """Tax-data credit: synthetic histories and ruleset backtests."""


@credit.command("generate-history")
@click.argument("n", type=click.IntRange(min=1, max=50_000_000))
@click.argument("file", type=_FILE)
@click.option("--seed", type=int, default=20240601, show_default=True, help="Same seed, same history.")
def generate_history_command(n: int, file: Path, seed: int) -> None:
    """Write N synthetic applications with outcomes to FILE (.parquet, or .csv)."""
    import polars as pl

    from credit.engine.history import generate_history, write_history

    started = time.perf_counter()
    frame = generate_history(n, seed)
    write_history(frame, file)
    by_grade = frame.group_by("grade").agg(pl.len().alias("n"), pl.col("defaulted").mean().alias("rate")).sort("grade")
    _emit(
        {
            "file": str(file),
            "applications": frame.height,
            "seed": seed,
            "default_rate": round(float(frame.select(pl.col("defaulted").mean()).item()), 6),
            "default_rate_by_grade": {g: round(r, 6) for g, r in zip(by_grade["grade"], by_grade["rate"], strict=True)},
            "elapsed_seconds": round(time.perf_counter() - started, 3),
        }
    )


@credit.command()
@click.option("--ruleset", "ruleset_path", required=True, type=_EXISTING, help="The draft (challenger) ruleset JSON.")
@click.option("--history", "history_path", required=True, type=_EXISTING, help="History file, .parquet or .csv.")
@click.option(
    "--champion",
    "champion_path",
    type=_EXISTING,
    default=None,
    help="The published ruleset to compare with; without it, the decisions recorded in the history.",
)
def backtest(ruleset_path: Path, history_path: Path, champion_path: Path | None) -> None:
    """Run a ruleset over past applications: approval, bad rate, loss, swap set.

    ``elapsed_seconds`` covers deciding and measuring with the history in
    memory; ``load_seconds`` is reading the files.
    """
    from credit.engine.backtest import run_backtest
    from credit.engine.history import read_history
    from credit.engine.rules import compile_ruleset, load_ruleset

    started = time.perf_counter()
    challenger = compile_ruleset(load_ruleset(ruleset_path))
    champion = compile_ruleset(load_ruleset(champion_path)) if champion_path is not None else None
    history = read_history(history_path)
    loaded = time.perf_counter() - started
    report = run_backtest(history, challenger, champion)
    _emit({**msgspec.to_builtins(report), "load_seconds": round(loaded, 4)})
