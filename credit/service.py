"""Tax records of credit/: who may read them, and how the authority's records
reach the stored taxpayer and filing rows.

The tax gateway is reached only through ``fetch_record``, only under a fully
signed consent (``consent_terms``), and an outage comes back as
``DataPending`` rather than an error, so that callers cannot mistake it for an
answer about the taxpayer.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from decimal import Decimal
from typing import Any

import msgspec

from app.errors import NotFound
from app.security import Principal, Role
from credit.consent import active_consent
from credit.engine.errors import TaxpayerNotFound
from credit.engine.provider import DataPending, SandboxProvider, TaxDataProvider, fetch_or_pending
from credit.engine.records import TaxConsent as ConsentTerms
from credit.engine.records import TaxRecord
from credit.schemas import FilingOut, TaxpayerOut
from credit.tables import TaxFiling, Taxpayer


def yuan(fen: int) -> str:
    return str((Decimal(fen) / 100).quantize(Decimal("0.01")))


def grades_of(taxpayer: Taxpayer) -> dict[str, str]:
    raw = taxpayer.grades
    parsed = json.loads(raw) if isinstance(raw, str) else raw
    return {str(k): str(v) for k, v in dict(parsed).items()}


async def list_taxpayers(principal: Principal, limit: int, offset: int) -> list[Taxpayer]:
    query = Taxpayer.objects().order_by(Taxpayer.id).limit(limit).offset(offset)
    if principal.role == Role.customer:
        query = query.where(Taxpayer.customer == principal.customer_id)
    return await query


async def get_taxpayer(principal: Principal, taxpayer_pk: int) -> TaxpayerOut:
    """A customer reads only their own records; another's answer like missing ones."""
    tp = await Taxpayer.objects().where(Taxpayer.id == taxpayer_pk).first()
    if tp is None or (principal.role == Role.customer and tp.customer != principal.customer_id):
        raise NotFound("no such taxpayer")
    filings = await TaxFiling.objects().where(TaxFiling.taxpayer == tp.id).order_by(TaxFiling.period)
    return TaxpayerOut(
        id=tp.id,
        taxpayer_id=tp.taxpayer_id,
        name=tp.name,
        registered_on=tp.registered_on,
        industry=tp.industry,
        status=tp.status,
        grades=grades_of(tp),
        arrears=yuan(tp.arrears_fen),
        penalties=yuan(tp.penalties_fen),
        filings=[
            FilingOut(
                period=f.period,
                vat_sales=yuan(f.vat_sales_fen),
                vat_paid=yuan(f.vat_paid_fen),
                income_tax=yuan(f.income_tax_fen),
                filed_on_time=f.filed_on_time,
            )
            for f in filings
        ],
    )


async def tax_paid_last_12(taxpayer_pk: int) -> int:
    filings = (
        await TaxFiling.select(TaxFiling.vat_paid_fen, TaxFiling.income_tax_fen)
        .where(TaxFiling.taxpayer == taxpayer_pk)
        .order_by(TaxFiling.period, ascending=False)
        .limit(12)
    )
    return sum(f["vat_paid_fen"] + f["income_tax_fen"] for f in filings)


# --- the tax gateway ------------------------------------------------------------------------

_PROVIDER: list[TaxDataProvider] = [SandboxProvider()]


def tax_data_provider() -> TaxDataProvider:
    """The tax gateway in use (the sandbox until the real gateway's client exists)."""
    return _PROVIDER[0]


def use_tax_data_provider(provider: TaxDataProvider) -> TaxDataProvider:
    """Swap the gateway (tests, and the setting that will choose it); returns the previous one."""
    previous, _PROVIDER[0] = _PROVIDER[0], provider
    return previous


async def consent_terms(taxpayer_id: str) -> ConsentTerms | None:
    """The fully signed consent in force for ``taxpayer_id``, in the terms the gateway checks."""
    consent = await active_consent(taxpayer_id)
    if consent is None:
        return None
    return ConsentTerms.from_dates(f"TC-{consent.id:08d}", consent.taxpayer_id, consent.valid_from, consent.expires_on)


async def fetch_record(taxpayer_id: str, consent: ConsentTerms) -> TaxRecord | DataPending | TaxpayerNotFound:
    """The record, ``DataPending`` on an outage, or the authority's "no such taxpayer"."""
    try:
        return await fetch_or_pending(tax_data_provider(), taxpayer_id, consent)
    except TaxpayerNotFound as exc:
        return exc


async def store_record(taxpayer: dict[str, Any], record: TaxRecord, now: datetime) -> None:
    """Refresh the stored taxpayer (``id`` and ``record_sha256`` of its row) and
    its filings from the authority's record, unless that record is stored already."""
    digest = hashlib.sha256(msgspec.json.encode(record)).hexdigest()
    if digest == taxpayer["record_sha256"]:
        return
    pk = taxpayer["id"]
    await Taxpayer.update(
        {
            Taxpayer.name: record.name,
            Taxpayer.kind: record.kind,
            Taxpayer.registered_on: record.registered_on,
            Taxpayer.industry: record.industry,
            Taxpayer.status: record.status,
            Taxpayer.grades: msgspec.json.encode(record.grades).decode(),
            Taxpayer.arrears_fen: record.arrears_fen,
            Taxpayer.penalties_fen: record.penalties_fen,
            Taxpayer.fetched_at: now,
            Taxpayer.record_as_of: record.as_of,
            Taxpayer.record_sha256: digest,
        }
    ).where(Taxpayer.id == pk)
    await TaxFiling.delete().where(TaxFiling.taxpayer == pk)
    if record.filings:
        await TaxFiling.insert(
            *(
                TaxFiling(
                    taxpayer=pk,
                    period=f.period,
                    vat_sales_fen=f.vat_sales_fen,
                    vat_paid_fen=f.vat_paid_fen,
                    income_tax_fen=f.income_tax_fen,
                    filed_on_time=f.filed_on_time,
                )
                for f in record.filings
            )
        )
