"""Batch intake of tax records from CSV and Parquet files in the wide layout.

The layout is documented in ``records``. Every bad cell is reported by data
row (from 1; the CSV header is not a row) and column name, up to
``MAX_ISSUES``, and a file with any bad cell is refused whole: a partial
import leaves the operator to work out which half went in. Parquet columns
that already have the layout's types are taken as they are; anything else
(all of a CSV) is parsed from text with the same rules.
"""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path
from typing import Any, Final

import msgspec
import polars as pl

from credit.engine.errors import ImportFailed, ImportIssue
from credit.engine.records import MONTHS, SERIES, WIDE_SCHEMA, MonthlyFiling, TaxRecord, month_column, record_from_row

MAX_ISSUES: Final = 50
_INT = re.compile(r"^[+-]?\d{1,18}$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_AT = re.compile(r"^(.*) - at `\$\.?(.*)`$")
_FILING_AT = re.compile(r"^filings\[(\d+)\]\.(\w+)$")
_WIRE_TO_COLUMN: Final = {f.encode_name: f.name for f in msgspec.structs.fields(TaxRecord)}
_FILING_WIRE: Final = {f.encode_name: f.name for f in msgspec.structs.fields(MonthlyFiling)}


class _CellError(ValueError):
    def __init__(self, column: str, message: str):
        super().__init__(message)
        self.column = column


def import_records(path: str | Path) -> list[TaxRecord]:
    """Every record of a ``.csv`` or ``.parquet`` file, validated, or ``ImportFailed``."""
    source = Path(path)
    suffix = source.suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise ImportFailed(source.name, [ImportIssue(row=0, path="", message="expected a .csv or .parquet file")])
    try:
        raw = pl.read_csv(source, infer_schema=False) if suffix == ".csv" else pl.read_parquet(source)
    except pl.exceptions.PolarsError as exc:
        raise ImportFailed(source.name, [ImportIssue(row=0, path="", message=f"unreadable: {exc}")]) from None
    return records_from_frame(raw, source.name)


def records_from_frame(raw: pl.DataFrame, source: str = "records") -> list[TaxRecord]:
    """Validate a raw wide frame (any column types) into records."""
    missing = [name for name in WIDE_SCHEMA if name not in raw.columns]
    unknown = [name for name in raw.columns if name not in WIDE_SCHEMA]
    if missing or unknown:
        layout = [ImportIssue(row=0, path=n, message="required column is missing") for n in missing]
        layout += [ImportIssue(row=0, path=n, message="not a column of the records layout") for n in unknown]
        raise ImportFailed(source, layout[:MAX_ISSUES], truncated=len(layout) > MAX_ISSUES)
    frame = raw.select(
        pl.col(name) if _native(raw.schema[name], dtype) else pl.col(name).cast(pl.String)
        for name, dtype in WIDE_SCHEMA.items()
    )
    records: list[TaxRecord] = []
    issues: list[ImportIssue] = []
    for number, row in enumerate(frame.iter_rows(named=True), start=1):
        try:
            typed = {name: _parse(name, value) for name, value in row.items()}
            records.append(record_from_row(typed))
        except _CellError as exc:
            issues.append(ImportIssue(row=number, path=exc.column, message=str(exc)))
        except (msgspec.ValidationError, ValueError) as exc:
            column, message = _locate(str(exc), row)
            issues.append(ImportIssue(row=number, path=column, message=message))
        if len(issues) >= MAX_ISSUES:
            raise ImportFailed(source, issues, truncated=number < frame.height)
    if issues:
        raise ImportFailed(source, issues)
    return records


def _native(actual: pl.DataType, wanted: pl.DataType) -> bool:
    if isinstance(wanted, pl.Enum):
        return False  # checked as text, so an unknown category names itself
    return actual == wanted or (wanted == pl.Int64() and actual.is_integer())


def _parse(column: str, value: Any) -> Any:
    """One cell as the layout's Python type; empty text is a missing value."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text == "":
        return None
    wanted = WIDE_SCHEMA[column]
    if wanted == pl.Int64():
        if not _INT.match(text):
            raise _CellError(column, f"{text!r} is not a whole number (fen, no decimals or separators)")
        return int(text)
    if wanted == pl.Boolean():
        lowered = text.lower()
        if lowered not in ("true", "false", "1", "0"):
            raise _CellError(column, f"{text!r} is not true or false")
        return lowered in ("true", "1")
    if wanted == pl.Date():
        try:
            if not _DATE.match(text):
                raise ValueError
            return date.fromisoformat(text)
        except ValueError:
            raise _CellError(column, f"{text!r} is not a date YYYY-MM-DD") from None
    return text


def _locate(message: str, row: dict[str, Any]) -> tuple[str, str]:
    """The column a record-level error is about, and the error without its path."""
    found = _AT.match(message)
    if found:
        text, path = found.group(1), found.group(2)
        if path in _WIRE_TO_COLUMN:
            column = _WIRE_TO_COLUMN[path]
            dtype = WIDE_SCHEMA.get(column)
            if isinstance(dtype, pl.Enum):
                text = f"{text}; one of {', '.join(dtype.categories.to_list())}"
            return column, text
        if filing := _FILING_AT.match(path):
            months = sum(1 for m in range(1, MONTHS + 1) if row.get(month_column(SERIES[0], m)) not in (None, ""))
            series = _FILING_WIRE.get(filing.group(2), "period")
            month = months - int(filing.group(1))
            return (month_column(series, month) if series in SERIES else "latest_period"), text
        return path.split(".")[0] or "", text
    head, sep, rest = message.partition(": ")
    if sep and (head in WIDE_SCHEMA or head in _WIRE_TO_COLUMN.values()):
        return head, rest
    if sep and head == "filings":
        return "latest_period", rest
    return "", message
