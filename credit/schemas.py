"""Structs of credit/ that cross the HTTP boundary."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from msgspec import Meta

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


class TaxConsentCreate(Base):
    taxpayer_pk: int
    months: Annotated[int, Meta(ge=1, le=36)] = 12


class TaxConsentOut(Base):
    id: int
    taxpayer_id: str
    scope: list[str]
    valid_from: date
    expires_on: date
    signed_document_id: int
