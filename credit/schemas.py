"""Structs of credit/ that cross the HTTP boundary."""

from __future__ import annotations

from datetime import date

from app.schemas import Base


class FilingOut(Base):
    period: str
    vat_sales: str
    vat_paid: str
    income_tax: str
    filed_on_time: bool


class TaxpayerOut(Base):
    id: int
    taxpayer_id: str
    name: str
    registered_on: date
    industry: str
    status: str
    grades: dict[str, str]
    arrears: str
    penalties: str
    filings: list[FilingOut]
