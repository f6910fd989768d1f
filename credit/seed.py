"""Demo data of credit/ for ``branchless seed``: the published tax-loan ruleset, and the demo
customer's company with 24 months of filings."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime

from stdnum.cn import uscc

from credit.rulesets import seed_published_ruleset
from credit.tables import TaxFiling, Taxpayer


def _uscc() -> str:
    body = "91310115MA1K4CBN2"  # enterprise, Shanghai Pudong
    return body + uscc.calc_check_digit(body)


def _months_back(n: int, today: date) -> list[str]:
    y, m = today.year, today.month
    out = []
    for _ in range(n):
        m -= 1
        if m == 0:
            y, m = y - 1, 12
        out.append(f"{y:04d}-{m:02d}")
    return list(reversed(out))


async def seed_demo(customer_id: int | None) -> None:
    """Publish the committed ruleset (idempotent); records for a newly created customer."""
    await seed_published_ruleset()
    if customer_id is None:
        return
    now = datetime.now(UTC)
    today = now.date()
    taxpayer = Taxpayer(
        taxpayer_id=_uscc(),
        customer=customer_id,
        name="上海张伟餐饮管理有限公司",
        registered_on=date(2018, 5, 14),
        industry="catering",
        status="normal",
        grades={str(today.year - 1): "A", str(today.year - 2): "B"},
        fetched_at=now,
    )
    await taxpayer.save()
    rng = random.Random(20260527)  # noqa: S311 (reproducible demo figures, not security)
    filings = []
    for i, period in enumerate(_months_back(24, today)):
        sales = int(rng.uniform(280_000, 420_000) * 100 * (1 + i / 80))
        filings.append(
            TaxFiling(
                taxpayer=taxpayer.id,
                period=period,
                vat_sales_fen=sales,
                vat_paid_fen=sales * 6 // 100,
                income_tax_fen=sales * 2 // 100,
                filed_on_time=i != 7,
            )
        )
    await TaxFiling.insert(*filings)
