"""Demo data for a developer's ``make run``: one account per role and a customer
with an insurance policy and two years of tax filings. Running it twice changes
nothing."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, date, datetime

from stdnum.cn import ric, uscc

from app import accounts
from app.db import transaction
from app.schemas import CustomerCreate, StaffCreate
from app.tables import Account


@dataclass(frozen=True)
class DemoLogin:
    role: str
    email: str
    password: str


DEMO_PASSWORD = "branchless-demo"  # noqa: S105 (printed demo login; seed refuses production)
STAFF = [
    ("admin", "admin@demo.branchless.cn", "Ada Admin"),
    ("account_manager", "manager@demo.branchless.cn", "李敏 (Li Min)"),
    ("risk_officer", "risk@demo.branchless.cn", "王强 (Wang Qiang)"),
    ("claims_adjuster", "adjuster@demo.branchless.cn", "陈静 (Chen Jing)"),
]
CUSTOMER_EMAIL = "customer@demo.branchless.cn"


def demo_logins() -> list[DemoLogin]:
    return [DemoLogin("customer", CUSTOMER_EMAIL, DEMO_PASSWORD)] + [
        DemoLogin(role, email, DEMO_PASSWORD) for role, email, _ in STAFF
    ]


def _id_number() -> str:
    body = "11010519880716042"  # Beijing Chaoyang, born 1988-07-16
    return body + ric.calc_check_digit(body + "0")  # stdnum wants a placeholder check digit


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


async def seed() -> list[DemoLogin]:
    """Create the demo data unless it exists; return the logins."""
    from claims.tables import Policy
    from credit.rulesets import seed_published_ruleset
    from credit.tables import TaxFiling, Taxpayer

    async with transaction():
        for role, email, name in STAFF:
            if not await Account.exists().where(Account.email == email):
                await accounts.create_staff(
                    StaffCreate(email=email, password=DEMO_PASSWORD, display_name=name, role=role)
                )
        # the committed tax-loan ruleset, published (does nothing once that version exists)
        await seed_published_ruleset()
        existing = await Account.objects().where(Account.email == CUSTOMER_EMAIL).first()
        if existing is not None:
            return demo_logins()
        customer_id = await accounts.create_customer(
            CustomerCreate(
                email=CUSTOMER_EMAIL,
                password=DEMO_PASSWORD,
                full_name="张伟 (Zhang Wei)",
                phone="13800138000",
                id_number=_id_number(),
                bank_account="6222020200112233445",
            )
        )
        now = datetime.now(UTC)
        today = now.date()
        await Policy.insert(
            Policy(
                policy_number="PH-2026-000001",
                customer=customer_id,
                product="Medical insurance (百万医疗)",
                coverage_start=date(today.year, 1, 1),
                coverage_end=date(today.year, 12, 31),
                sum_insured_fen=1_000_000_00 * 2,
                deductible_fen=10_000_00,
                created_at=now,
            )
        )
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
    return demo_logins()
