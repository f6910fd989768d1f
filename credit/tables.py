"""Tables of credit/: taxpayers and the monthly filings shared by the tax authority."""

from __future__ import annotations

from piccolo.columns import JSON, BigInt, Boolean, Date, ForeignKey, Integer, Serial, Timestamptz, Varchar
from piccolo.table import Table

from app.tables import Customer


class Taxpayer(Table, tablename="taxpayer"):
    """An enterprise (unified social credit code) or sole proprietor (resident ID)."""

    id = Serial(primary_key=True)

    taxpayer_id = Varchar(length=18, unique=True, index=True)
    customer = ForeignKey(references=Customer, null=True, default=None, index=True)
    name = Varchar(length=200)
    registered_on = Date()
    industry = Varchar(length=64)
    status = Varchar(length=16)
    grades = JSON(default="{}")
    """Yearly tax credit grades, e.g. ``{"2025": "A", "2024": "B"}``."""
    arrears_fen = BigInt(default=0)
    penalties_fen = BigInt(default=0)
    fetched_at = Timestamptz()


class TaxFiling(Table, tablename="tax_filing"):
    """One month's filing; money in integer fen."""

    id = Serial(primary_key=True)

    taxpayer = ForeignKey(references=Taxpayer, index=True)
    period = Varchar(length=7)
    """``YYYY-MM``."""
    vat_sales_fen = BigInt(default=0)
    vat_paid_fen = BigInt(default=0)
    income_tax_fen = BigInt(default=0)
    filed_on_time = Boolean(default=True)


class TaxConsent(Table, tablename="tax_consent"):
    """The taxpayer's consent to fetch their records from the tax authority: scope,
    validity, and the e-signed document that carries it."""

    id = Serial(primary_key=True)
    customer = ForeignKey(references=Customer, index=True)
    taxpayer_id = Varchar(length=18, index=True)
    scope = JSON(default="[]")
    valid_from = Date()
    expires_on = Date()
    signed_document_id = Integer(null=True, default=None)
    """The kyc signing-ceremony document (kept as an id: credit asks kyc, it does not own it)."""
    state = Varchar(length=24, default="awaiting_signature", index=True)
    created_at = Timestamptz()
