"""People and products for the credit tests: each test gets its own product,
so tests never see each other's published versions or experiments."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from tests.helpers import Person, bearer, make_customer, make_staff, make_taxpayer
from tests.integration.credit.builders import product_name, signed_consent


@dataclass
class Officers:
    author: Person
    reviewer: Person
    author_headers: dict[str, str]
    reviewer_headers: dict[str, str]


@pytest.fixture
async def officers() -> Officers:
    a, b = await make_staff("risk_officer"), await make_staff("risk_officer")
    return Officers(a, b, await bearer(a.account_id), await bearer(b.account_id))


@pytest.fixture
def product() -> str:
    return product_name()


@dataclass
class Borrower:
    person: Person
    taxpayer_pk: int
    headers: dict[str, str]


async def make_borrower(*, consent: bool = True) -> Borrower:
    person = await make_customer("王芳")
    assert person.customer_id is not None
    taxpayer_pk = await make_taxpayer(person.customer_id)
    if consent:
        await signed_consent(person, taxpayer_pk)
    return Borrower(person, taxpayer_pk, await bearer(person.account_id))


@pytest.fixture
async def borrower() -> Borrower:
    return await make_borrower()


@pytest.fixture
def provider() -> Any:
    """Swap in a sandbox gateway the test can break; the default comes back after."""
    from credit.engine.provider import SandboxProvider
    from credit.service import use_tax_data_provider

    sandbox = SandboxProvider()
    previous = use_tax_data_provider(sandbox)
    yield sandbox
    use_tax_data_provider(previous)


@pytest.fixture
async def audit_since() -> Any:
    """The audit actions written during the test (``await audit_since()``)."""
    from app.tables import AuditEntry

    last = await AuditEntry.select(AuditEntry.id).order_by(AuditEntry.id, ascending=False).first()
    start = last["id"] if last else 0

    async def actions() -> list[dict[str, Any]]:
        return await AuditEntry.select().where(AuditEntry.id > start).order_by(AuditEntry.id)

    return actions
