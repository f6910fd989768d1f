"""Rules of credit/: who may read which tax records."""

from __future__ import annotations

import json
from decimal import Decimal

from app.errors import NotFound
from app.security import Principal, Role
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
