"""Batch intake of record files: round trips, and errors that name row and column."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import polars as pl
import pytest

from credit.engine.errors import ImportFailed
from credit.engine.importer import import_records, records_from_frame
from credit.engine.provider import SandboxProvider, sandbox_ric, sandbox_uscc
from credit.engine.records import TaxRecord, records_frame


@pytest.fixture(scope="module")
def records() -> list[TaxRecord]:
    provider = SandboxProvider(date(2025, 6, 15))
    return [provider.record(sandbox_uscc(n)) for n in range(12)] + [provider.record(sandbox_ric(n)) for n in range(3)]


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_round_trip(records: list[TaxRecord], tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"records{suffix}"
    frame = records_frame(records)
    frame.write_csv(path) if suffix == ".csv" else frame.write_parquet(path)
    assert import_records(path) == records


def _break(frame: pl.DataFrame, row: int, column: str, value: str | None) -> pl.DataFrame:
    return frame.with_columns(
        pl.when(pl.int_range(pl.len()) == row)
        .then(pl.lit(value))
        .otherwise(pl.col(column).cast(pl.String))
        .alias(column)
    )


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_bad_cells_are_reported_by_row_and_column(records: list[TaxRecord], tmp_path: Path, suffix: str) -> None:
    frame = records_frame(records)
    for row, column, value in [
        (1, "taxpayer_id", sandbox_uscc(1)[:-1] + "0"),
        (2, "industry", "mining"),
        (3, "arrears_fen", "12.50"),
        (4, "vat_paid_fen_m03", "1,000"),
        (5, "grades", "2024:E"),
        (6, "registered_on", "2026-01-01"),
        (7, "filed_on_time_m02", None),
        (8, "as_of", "15/06/2025"),
        (9, "filed_on_time_m05", "maybe"),
        (10, "vat_sales_fen_m01", "9999999999999999"),
    ]:
        frame = _break(frame, row, column, value)
    path = tmp_path / f"bad{suffix}"
    frame.write_csv(path) if suffix == ".csv" else frame.write_parquet(path)
    with pytest.raises(ImportFailed) as caught:
        import_records(path)
    found = {(i.row, i.path) for i in caught.value.issues}
    assert found == {
        (2, "taxpayer_id"),
        (3, "industry"),
        (4, "arrears_fen"),
        (5, "vat_paid_fen_m03"),
        (6, "grades"),
        (7, "registered_on"),
        (8, "filed_on_time_m02"),
        (9, "as_of"),
        (10, "filed_on_time_m05"),
        (11, "vat_sales_fen_m01"),
    }
    assert caught.value.message.startswith(f"bad{suffix}: row 2, column taxpayer_id: not a valid unified social")
    messages = {i.path: i.message for i in caught.value.issues}
    assert "one of manufacturing" in messages["industry"]
    assert "whole number" in messages["arrears_fen"]
    assert "YYYY-MM-DD" in messages["as_of"]


def test_layout_problems_are_reported_by_column(records: list[TaxRecord]) -> None:
    frame = records_frame(records).drop("grades").with_columns(pl.lit(1).alias("credit_score"))
    with pytest.raises(ImportFailed) as caught:
        records_from_frame(frame)
    assert {(i.row, i.path) for i in caught.value.issues} == {(0, "grades"), (0, "credit_score")}


def test_a_filing_after_a_gap_is_refused(records: list[TaxRecord]) -> None:
    full = next(i for i, r in enumerate(records) if len(r.filings) == 24)
    frame = records_frame(records)
    frame = frame.with_columns(
        *(
            pl.when(pl.int_range(pl.len()) == full).then(None).otherwise(pl.col(f"{s}_m05")).alias(f"{s}_m05")
            for s in ("vat_sales_fen", "vat_paid_fen", "income_tax_fen", "filed_on_time")
        )
    )
    with pytest.raises(ImportFailed) as caught:
        records_from_frame(frame)
    assert [(i.row, i.path) for i in caught.value.issues] == [(full + 1, "vat_sales_fen_m06")]


def test_unknown_file_types_are_refused(tmp_path: Path) -> None:
    (tmp_path / "x.xlsx").write_bytes(b"PK")
    with pytest.raises(ImportFailed, match=r"\.csv or \.parquet"):
        import_records(tmp_path / "x.xlsx")
    (tmp_path / "x.parquet").write_bytes(b"not parquet")
    with pytest.raises(ImportFailed, match="unreadable"):
        import_records(tmp_path / "x.parquet")
