"""The ``credit`` command group: one JSON object on stdout, exit 0/1/2."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from click.testing import CliRunner

from credit.cli import credit

RULESETS = Path(__file__).resolve().parents[3] / "credit" / "rulesets"
V1 = str(RULESETS / "ruleset_tax_loan_v1.json")
V2 = str(RULESETS / "ruleset_tax_loan_v2_challenger.json")


def run(*args: str) -> tuple[int, dict[str, Any]]:
    result = CliRunner().invoke(credit, list(args))
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1, result.stdout  # exactly one JSON object
    return result.exit_code, json.loads(lines[0])


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("credit") / "h.parquet"
    code, out = run("generate-history", "5000", str(path), "--seed", "4")
    assert code == 0
    assert out["applications"] == 5000
    assert set(out["default_rate_by_grade"]) == {"A", "B", "M", "C", "D"}
    return path


def test_generate_history_writes_parquet(history: Path) -> None:
    frame = pl.read_parquet(history)
    assert frame.height == 5000
    assert {"grade", "defaulted", "pd", "lgd_bp", "historical_outcome"} <= set(frame.columns)


def test_backtest_prints_metrics_swap_and_elapsed(history: Path) -> None:
    code, out = run("backtest", "--ruleset", V2, "--history", str(history))
    assert code == 0
    flat = json.dumps(out).lower()
    assert all(key in flat for key in ("approval", "bad", "loss", "swap", "elapsed"))
    assert out["applications"] == 5000
    assert out["challenger"]["ruleset"] == "tax_loan 2-challenger"
    assert out["champion"]["ruleset"] == "historical decisions"
    assert 0 < out["challenger"]["overall"]["approval_rate"] < 1
    assert out["swap"]["swap_in"]["applications"] >= 0
    assert isinstance(out["elapsed_seconds"], float)
    assert isinstance(out["load_seconds"], float)


def test_backtest_with_a_champion_ruleset(history: Path) -> None:
    code, out = run("backtest", "--ruleset", V2, "--history", str(history), "--champion", V1)
    assert code == 0
    assert out["champion"]["ruleset"] == "tax_loan 1"
    assert set(out["challenger"]["by_grade"]) == {"A", "B", "M", "C", "D"}
    assert sum(cell["applications"] for cell in out["swap"]["matrix"]) == 5000


def test_invalid_ruleset_is_one_json_error_with_cells(history: Path, tmp_path: Path) -> None:
    bad = json.loads(Path(V1).read_text())
    bad["rows"][2]["conditions"][0]["value"] = ["C", "E"]
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(bad))
    code, out = run("backtest", "--ruleset", str(path), "--history", str(history))
    assert code == 1
    assert out["error"] == "ruleset_invalid"
    assert out["fields"][0]["path"] == "rows[2].conditions[0].value"


def test_bad_history_and_usage_errors_are_json_too(tmp_path: Path) -> None:
    path = tmp_path / "h.csv"
    path.write_text("application_id\n1\n")
    code, out = run("backtest", "--ruleset", V1, "--history", str(path))
    assert code == 1
    assert out["error"] == "import_failed"
    code, out = run("backtest", "--ruleset", V1, "--history", str(tmp_path / "missing.parquet"))
    assert code == 2
    assert out["error"] == "usage"
    code, out = run("generate-history", "0", str(tmp_path / "x.parquet"))
    assert (code, out["error"]) == (2, "usage")
