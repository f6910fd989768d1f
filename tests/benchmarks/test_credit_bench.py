"""Credit engine speed: a backtest of a million applications on one core, and one live decision.

The measurement runs in a child process pinned to one CPU with polars limited to
one thread (``POLARS_MAX_THREADS`` is read when polars is imported, hence the
child: ``python -m tests.benchmarks.test_credit_bench``). The history is
generated first (features included, as a history file holds them); the timed
part is what ``branchless credit backtest`` reports as ``elapsed_seconds``:
deciding every application and computing every metric, the swap set included.
Medians of a few runs are printed.

``BRANCHLESS_CREDIT_BENCH_ROWS`` (default 1,000,000) and ``BRANCHLESS_CREDIT_BENCH_RUNS``
(default 5) size it; ``BRANCHLESS_BENCH_ENFORCE=1`` fails on a missed target
(backtest <= 1 s, one decision <= 1 ms).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROWS = int(os.environ.get("BRANCHLESS_CREDIT_BENCH_ROWS", "1000000"))
RUNS = int(os.environ.get("BRANCHLESS_CREDIT_BENCH_RUNS", "5"))
ENFORCE = os.environ.get("BRANCHLESS_BENCH_ENFORCE") == "1"
RULESETS = Path(__file__).resolve().parents[2] / "credit" / "rulesets"


def _median_seconds(action: Any, runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def measure() -> dict[str, Any]:
    """Runs inside the pinned child."""
    from credit.engine.backtest import run_backtest
    from credit.engine.features import Features, features_of
    from credit.engine.history import generate_history
    from credit.engine.provider import SandboxProvider, sandbox_uscc
    from credit.engine.rules import compile_ruleset, decide, load_ruleset

    v1 = compile_ruleset(load_ruleset(RULESETS / "ruleset_tax_loan_v1.json"))
    v2 = compile_ruleset(load_ruleset(RULESETS / "ruleset_tax_loan_v2_challenger.json"))
    started = time.perf_counter()
    history = generate_history(ROWS, seed=1)
    generated = time.perf_counter() - started
    run_backtest(history, v2)  # warm up
    against_history = [run_backtest(history, v2).elapsed_seconds for _ in range(RUNS)]
    against_v1 = [run_backtest(history, v2, v1).elapsed_seconds for _ in range(RUNS)]

    sample = history.head(2_000).select(Features.__struct_fields__).to_dicts()
    applications = [Features(**row) for row in sample]
    decisions: list[float] = []
    for _ in range(RUNS):
        started = time.perf_counter()
        for features in applications:
            decide(v1, features)
        decisions.append((time.perf_counter() - started) / len(applications))
    provider = SandboxProvider()
    records = [provider.record(sandbox_uscc(n)) for n in range(500)]
    live: list[float] = []
    for _ in range(RUNS):
        started = time.perf_counter()
        for record in records:
            decide(v1, features_of(record))
        live.append((time.perf_counter() - started) / len(records))
    return {
        "rows": ROWS,
        "history_generation_seconds": round(generated, 2),
        "backtest_seconds_median": round(statistics.median(against_history), 3),
        "backtest_seconds_min": round(min(against_history), 3),
        "backtest_with_champion_ruleset_seconds_median": round(statistics.median(against_v1), 3),
        "single_decision_us_median": round(statistics.median(decisions) * 1e6, 1),
        "features_and_decision_us_median": round(statistics.median(live) * 1e6, 1),
    }


def test_credit_backtest_and_decision_speed() -> None:
    env = {**os.environ, "POLARS_MAX_THREADS": "1"}
    child = subprocess.run(
        [sys.executable, "-m", "tests.benchmarks.test_credit_bench"],
        capture_output=True,
        text=True,
        env=env,
        cwd=Path(__file__).resolve().parents[2],
        timeout=1800,
        check=False,
    )
    assert child.returncode == 0, child.stderr[-2000:]
    figures = json.loads(child.stdout.strip().splitlines()[-1])
    print(f"\ncredit backtest, one core: {json.dumps(figures)}")
    if ENFORCE:
        assert figures["backtest_seconds_median"] <= 1.0
        assert figures["single_decision_us_median"] <= 1000


if __name__ == "__main__":
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    print(json.dumps(measure()))
