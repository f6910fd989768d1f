"""Demo data for a developer's ``make run``: one account per role and a customer
with an insurance policy and two years of tax filings. Running it twice changes
nothing."""

from __future__ import annotations

from dataclasses import dataclass

from stdnum.cn import ric

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


async def seed() -> list[DemoLogin]:
    """Create the demo data unless it exists; return the logins. Each domain adds its own
    part (``seed_demo``), as the factory assembles them."""
    from app.factory import domain_seeders

    async with transaction():
        for role, email, name in STAFF:
            if not await Account.exists().where(Account.email == email):
                await accounts.create_staff(
                    StaffCreate(email=email, password=DEMO_PASSWORD, display_name=name, role=role)
                )
        customer_id: int | None = None
        if not await Account.exists().where(Account.email == CUSTOMER_EMAIL):
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
        for seed_domain in domain_seeders():
            await seed_domain(customer_id)
    return demo_logins()
