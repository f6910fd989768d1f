"""Builders for test data: real rows through the real services, unique per call."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from stdnum.cn import ric

PASSWORD = "correct horse battery"


_ISSUED = {"110105198807160427"}  # the demo customer's (``branchless seed``)


def id_number(seed: int | None = None) -> str:
    """A valid resident identity number (Beijing Chaoyang), never the same twice in a test
    run: the database refuses a second customer with the same number."""
    while True:
        n = secrets.randbelow(15000 * 1000) if seed is None else seed
        born = date(1960, 1, 1) + timedelta(days=n // 1000)
        body = f"110105{born:%Y%m%d}{n % 1000:03d}"
        number = body + ric.calc_check_digit(body + "0")
        if seed is not None or number not in _ISSUED:
            _ISSUED.add(number)
            return number


def mobile() -> str:
    return "139" + f"{secrets.randbelow(10**8):08d}"


@dataclass(frozen=True)
class Person:
    account_id: int
    customer_id: int | None
    email: str
    id_number: str = ""


async def make_customer(name: str = "测试客户") -> Person:
    from app import accounts
    from app.db import transaction
    from app.schemas import CustomerCreate

    email = f"c-{secrets.token_hex(5)}@example.cn"
    number = id_number()
    async with transaction():
        customer_id = await accounts.create_customer(
            CustomerCreate(
                email=email,
                password=PASSWORD,
                full_name=name,
                phone=mobile(),
                id_number=number,
                bank_account="62220202" + f"{secrets.randbelow(10**11):011d}",
            )
        )
    from app.tables import Customer

    row = await Customer.select(Customer.account).where(Customer.id == customer_id).first()
    assert row is not None
    return Person(row["account"], customer_id, email, number)


async def make_staff(role: str) -> Person:
    from app import accounts
    from app.db import transaction
    from app.schemas import StaffCreate

    email = f"{role}-{secrets.token_hex(5)}@branchless.cn"
    async with transaction():
        account_id = await accounts.create_staff(
            StaffCreate(email=email, password=PASSWORD, display_name=f"Staff {role}", role=role)
        )
    return Person(account_id, None, email)


async def bearer(account_id: int) -> dict[str, str]:
    """A fresh API token for the account, as an Authorization header."""
    from app.security import TokenKind, issue_token

    token, _ = await issue_token(account_id, TokenKind.api, timedelta(minutes=10))
    return {"authorization": f"Bearer {token}"}


async def make_policy(customer_id: int) -> int:
    from claims.tables import Policy

    policy = Policy(
        policy_number=f"PT-{secrets.token_hex(6)}",
        customer=customer_id,
        product="Medical",
        coverage_start=date(2026, 1, 1),
        coverage_end=date(2026, 12, 31),
        sum_insured_fen=50_000_000,
        created_at=datetime.now(UTC),
    )
    await policy.save()
    return int(policy.id)


async def make_taxpayer(customer_id: int) -> int:
    from stdnum.cn import uscc

    from credit.tables import TaxFiling, Taxpayer

    body = "91110105" + secrets.token_hex(5).upper()[:9]
    body = "".join(c if c not in "IOSVZ" else "A" for c in body)
    tp = Taxpayer(
        taxpayer_id=body + uscc.calc_check_digit(body),
        customer=customer_id,
        name="测试企业",
        registered_on=date(2019, 3, 1),
        industry="retail",
        status="normal",
        grades={"2025": "B"},
        fetched_at=datetime.now(UTC),
    )
    await tp.save()
    await TaxFiling.insert(
        TaxFiling(
            taxpayer=tp.id,
            period="2026-10",
            vat_sales_fen=100_00,
            vat_paid_fen=6_00,
            income_tax_fen=2_00,
            filed_on_time=True,
        )
    )
    return int(tp.id)
