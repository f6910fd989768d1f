"""Tax records as the tax authority's gateway shares them, and their flat layout.

A record is validated once, where it enters (gateway, sandbox or file), so
that every later step can trust it: the taxpayer id carries its check digit,
the filings are consecutive months ending before the record's date, and money
is integer fen bounded well inside the range where integers and binary floats
agree (|x| < 10^15 < 2^53), which the vectorised features rely on.

The flat ("wide") layout has one row per record. It is the layout of record
files (CSV or Parquet), of the vectorised feature computation and of the
synthetic generator, so all of them read the same columns:

==========================  =========  ==============================================
column                      type       meaning
==========================  =========  ==============================================
taxpayer_id                 str        USCC (enterprise) or resident ID (sole proprietor)
kind                        str        ``enterprise`` or ``sole_proprietor``
name                        str        registered name
registered_on               date       ``YYYY-MM-DD``
industry                    str        one of ``INDUSTRIES``
status                      str        ``normal`` or ``abnormal``
grades                      str        yearly credit grades, latest first: ``2024:A;2023:B`` (may be empty)
arrears_fen                 int        tax owed and overdue now, fen
penalties_12m_fen           int        penalties and late fees over the last 12 months, fen
as_of                       date       the date the authority produced the record
latest_period               str        ``YYYY-MM`` of ``m01``; empty when there are no filings
vat_sales_fen_mNN           int        VAT taxable sales of month NN (01 = latest_period, 02 = the month before ...)
vat_paid_fen_mNN            int        VAT paid for month NN
income_tax_fen_mNN          int        income tax paid for month NN
filed_on_time_mNN           bool       whether month NN was filed by its deadline
==========================  =========  ==============================================

NN runs 01..24; the four cells of a month are empty together when the record
has no filing for it (a young business), and a record's filings are the
months 01..k without gaps.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, time, timedelta, timezone
from itertools import pairwise
from typing import Annotated, Any, Final, Literal, get_args

import msgspec
import polars as pl
from msgspec import Meta
from stdnum.cn import ric, uscc
from stdnum.exceptions import ValidationError as StdnumError

from app.schemas import Base

Grade = Literal["A", "B", "M", "C", "D"]
Status = Literal["normal", "abnormal"]
Kind = Literal["enterprise", "sole_proprietor"]
Industry = Literal[
    "manufacturing",
    "wholesale_retail",
    "construction",
    "transport_logistics",
    "catering_hospitality",
    "it_services",
    "agriculture",
    "business_services",
]
GRADES: Final[tuple[str, ...]] = get_args(Grade)
STATUSES: Final[tuple[str, ...]] = get_args(Status)
KINDS: Final[tuple[str, ...]] = get_args(Kind)
INDUSTRIES: Final[tuple[str, ...]] = get_args(Industry)
MONTHS: Final = 24
CHINA: Final = timezone(timedelta(hours=8), "CST")
"""China Standard Time: no daylight saving, so a fixed offset needs no tz database."""
MONEY_BOUND: Final = 10**15
"""Fen; far above any small business, far below 2^53 where floats stop being exact."""

Money = Annotated[int, Meta(ge=-MONEY_BOUND, le=MONEY_BOUND)]
NonNegativeMoney = Annotated[int, Meta(ge=0, le=MONEY_BOUND)]
Period = Annotated[str, Meta(pattern=r"^\d{4}-(0[1-9]|1[0-2])$")]
Year = Annotated[str, Meta(pattern=r"^\d{4}$")]


def month_index(period: str) -> int:
    """Months since year 0, so consecutive periods differ by exactly one."""
    return int(period[:4]) * 12 + int(period[5:7]) - 1


def period_of(index: int) -> str:
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def validate_taxpayer_id(value: str, kind: str) -> str:
    """The normalised id; enterprises carry a unified social credit code, sole
    proprietors the owner's resident identity number. Checking against the
    declared kind (rather than guessing) avoids the 1-in-31 chance of a
    numeric id passing both check-digit schemes."""
    try:
        return str(uscc.validate(value) if kind == "enterprise" else ric.validate(value))
    except StdnumError as exc:
        what = "unified social credit code" if kind == "enterprise" else "resident identity number"
        raise ValueError(f"taxpayer_id: not a valid {what} ({exc})") from None


class MonthlyFiling(Base):
    """One month's VAT and income tax return; negative sales are legitimate
    (red-letter invoices reversing earlier sales)."""

    period: Period
    vat_sales_fen: Money
    vat_paid_fen: Money
    income_tax_fen: Money
    filed_on_time: bool


class TaxRecord(Base):
    """What the tax authority shares about one taxpayer, at one date."""

    taxpayer_id: Annotated[str, Meta(min_length=18, max_length=18)]
    kind: Kind
    name: Annotated[str, Meta(min_length=1, max_length=200)]
    registered_on: date
    industry: Industry
    status: Status
    grades: dict[Year, Grade]
    filings: Annotated[list[MonthlyFiling], Meta(max_length=MONTHS)]
    arrears_fen: NonNegativeMoney
    penalties_fen: NonNegativeMoney
    """Penalties and late fees over the last 12 months."""
    as_of: date

    def __post_init__(self) -> None:
        self.taxpayer_id = validate_taxpayer_id(self.taxpayer_id, self.kind)
        if self.registered_on > self.as_of:
            raise ValueError("registered_on: after the record's as_of date")
        if any(int(year) > self.as_of.year for year in self.grades):
            raise ValueError("grades: a grade for a year after the record's as_of date")
        indexes = [month_index(f.period) for f in self.filings]
        if any(b - a != 1 for a, b in pairwise(indexes)):
            raise ValueError("filings: periods must be consecutive months in ascending order")
        if indexes and indexes[-1] >= self.as_of.year * 12 + self.as_of.month - 1:
            raise ValueError("filings: the latest period must be a month before the record's as_of month")

    @property
    def latest_period(self) -> str | None:
        return self.filings[-1].period if self.filings else None

    def latest_first(self) -> list[MonthlyFiling]:
        return self.filings[::-1]


class TaxConsent(Base):
    """The taxpayer's consent to share their tax data with the bank; the
    gateway is called only inside it."""

    consent_id: Annotated[str, Meta(min_length=1, max_length=64)]
    taxpayer_id: str
    scopes: frozenset[str]
    granted_at: Annotated[datetime, Meta(tz=True)]
    expires_at: Annotated[datetime, Meta(tz=True)]
    revoked_at: Annotated[datetime, Meta(tz=True)] | None = None

    @classmethod
    def from_dates(
        cls,
        consent_id: str,
        taxpayer_id: str,
        valid_from: date,
        expires_on: date,
        scopes: frozenset[str] = frozenset({"tax_record"}),
    ) -> TaxConsent:
        """A consent stored by day (as ``credit.tables.TaxConsent`` is): in force
        from the start of ``valid_from`` to the end of ``expires_on``, Beijing time."""
        start = datetime.combine(valid_from, time.min, CHINA)
        end = datetime.combine(expires_on + timedelta(days=1), time.min, CHINA)
        return cls(consent_id=consent_id, taxpayer_id=taxpayer_id, scopes=scopes, granted_at=start, expires_at=end)

    def covers(self, taxpayer_id: str, scope: str, at: datetime) -> bool:
        """Whether a fetch of ``scope`` for ``taxpayer_id`` at ``at`` is allowed."""
        live = self.granted_at <= at < self.expires_at and (self.revoked_at is None or at < self.revoked_at)
        return live and scope in self.scopes and self.taxpayer_id == taxpayer_id


SCOPE_TAX_RECORD: Final = "tax_record"
SERIES: Final = ("vat_sales_fen", "vat_paid_fen", "income_tax_fen", "filed_on_time")


def month_column(series: str, month: int) -> str:
    """The wide column of ``series`` for month ``month`` (1 = latest)."""
    return f"{series}_m{month:02d}"


STATIC_SCHEMA: Final[dict[str, pl.DataType]] = {
    "taxpayer_id": pl.String(),
    "kind": pl.Enum(KINDS),
    "name": pl.String(),
    "registered_on": pl.Date(),
    "industry": pl.Enum(INDUSTRIES),
    "status": pl.Enum(STATUSES),
    "grades": pl.String(),
    "arrears_fen": pl.Int64(),
    "penalties_fen": pl.Int64(),
    "as_of": pl.Date(),
    "latest_period": pl.String(),
}
WIDE_SCHEMA: Final[dict[str, pl.DataType]] = {
    **STATIC_SCHEMA,
    **{
        month_column(s, m): (pl.Boolean() if s == "filed_on_time" else pl.Int64())
        for s in SERIES
        for m in range(1, MONTHS + 1)
    },
}


def grades_text(grades: Mapping[str, str]) -> str:
    """``{"2023": "B", "2024": "A"}`` as ``2024:A;2023:B``: latest first, so the
    latest grade is a fixed-position read in the vectorised features."""
    return ";".join(f"{year}:{grades[year]}" for year in sorted(grades, reverse=True))


def parse_grades(text: str) -> dict[str, str]:
    """The inverse of ``grades_text``; ``ValueError`` says what is wrong."""
    grades: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(";"))):
        year, _, grade = part.partition(":")
        if len(year) != 4 or not year.isdigit() or grade not in GRADES:
            raise ValueError(f"grades: {part!r} is not YEAR:GRADE with a grade among {', '.join(GRADES)}")
        if year in grades:
            raise ValueError(f"grades: year {year} appears twice")
        grades[year] = grade
    return grades


def record_row(record: TaxRecord) -> dict[str, Any]:
    """One record as a row of the wide layout."""
    row: dict[str, Any] = {
        "taxpayer_id": record.taxpayer_id,
        "kind": record.kind,
        "name": record.name,
        "registered_on": record.registered_on,
        "industry": record.industry,
        "status": record.status,
        "grades": grades_text(record.grades),
        "arrears_fen": record.arrears_fen,
        "penalties_fen": record.penalties_fen,
        "as_of": record.as_of,
        "latest_period": record.latest_period,
    }
    latest_first = record.latest_first()
    for m in range(1, MONTHS + 1):
        filing = latest_first[m - 1] if m <= len(latest_first) else None
        for series in SERIES:
            row[month_column(series, m)] = None if filing is None else getattr(filing, series)
    return row


def records_frame(records: list[TaxRecord]) -> pl.DataFrame:
    """Records in the wide layout with its canonical types."""
    return pl.DataFrame([record_row(r) for r in records], schema=WIDE_SCHEMA, orient="row")


def record_from_row(row: dict[str, Any]) -> TaxRecord:
    """A wide row (typed Python values) back to a validated record.

    Raises ``msgspec.ValidationError`` or ``ValueError`` whose message starts
    with the field at fault; the importer turns that into a cell reference.
    """
    latest = row.get("latest_period")
    filings: list[dict[str, Any]] = []
    if latest:
        start = month_index(str(latest))
        for m in range(1, MONTHS + 1):
            cells = [row.get(month_column(s, m)) for s in SERIES]
            if all(c is None for c in cells):
                break
            if any(c is None for c in cells):
                missing = next(s for s, c in zip(SERIES, cells, strict=True) if c is None)
                raise ValueError(f"{month_column(missing, m)}: empty while the month's other cells are filled")
            filings.append({"period": period_of(start - m + 1), **dict(zip(SERIES, cells, strict=True))})
        for m in range(len(filings) + 2, MONTHS + 1):
            if any(row.get(month_column(s, m)) is not None for s in SERIES):
                raise ValueError(f"{month_column('vat_sales_fen', m)}: a filing after a gap; months must be 01..k")
    grades = row.get("grades") or ""
    data = {name: row.get(name) for name in _RECORD_FIELDS if name not in ("grades", "filings")}
    data["grades"] = parse_grades(str(grades))
    data["filings"] = [_wire(f, _FILING_FIELDS) for f in reversed(filings)]
    return msgspec.convert(_wire(data, _RECORD_FIELDS), TaxRecord, strict=True)


_RECORD_FIELDS: Final = {f.name: f.encode_name for f in msgspec.structs.fields(TaxRecord)}
_FILING_FIELDS: Final = {f.name: f.encode_name for f in msgspec.structs.fields(MonthlyFiling)}


def _wire(data: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    return {names[key]: value for key, value in data.items()}
