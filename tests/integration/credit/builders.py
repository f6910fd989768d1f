"""Builders for credit tests: real rows through the real services.

A tax-data consent takes effect once both signatures are on it; the signing
ceremony (face check, PAdES signatures) is tested in ``tests/integration/kyc``,
so here the consent's document is generated for real and then marked completed,
the state the ceremony leaves it in.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

from tests.helpers import Person

RULESETS = Path(__file__).resolve().parents[3] / "credit" / "rulesets"


def ruleset_body(product: str, version: str = "1", source: str = "ruleset_tax_loan_v1.json") -> dict[str, Any]:
    """A committed ruleset file as a dict, moved to ``product`` and ``version``."""
    body: dict[str, Any] = json.loads((RULESETS / source).read_text())
    body["product"], body["version"] = product, version
    return body


def approve_all(product: str, version: str = "1") -> dict[str, Any]:
    """A table with no rows whose default approves everyone (a known outcome)."""
    return {
        "product": product,
        "version": version,
        "hitPolicy": "first",
        "maxLimitFen": 300_000_000,
        "limitStepFen": 100_000,
        "constants": {"k": 5},
        "rows": [],
        "defaults": {"outcome": "approve", "limit": "k * tax_paid_12m_fen", "priceTier": "T2"},
    }


def product_name() -> str:
    return f"t_{secrets.token_hex(5)}"


def officer(person: Person) -> Any:
    from app.security import Principal, Role, TokenKind

    return Principal(person.account_id, Role.risk_officer, person.email, "Officer", None, 0, TokenKind.api)


def customer_principal(person: Person) -> Any:
    from app.security import Principal, Role, TokenKind

    return Principal(person.account_id, Role.customer, person.email, "客户", person.customer_id, 0, TokenKind.api)


async def published(body: dict[str, Any], author: Person, approver: Person) -> int:
    """Take a table through draft, submit, approve (by another officer) and publish."""
    from app.db import transaction
    from credit import rulesets

    async with transaction():
        row = await rulesets.create_draft(officer(author), json.dumps(body))
        await rulesets.submit(officer(author), row.id)
        await rulesets.approve(officer(approver), row.id)
        await rulesets.publish(officer(approver), row.id)
    return int(row.id)


async def approved(body: dict[str, Any], author: Person, approver: Person) -> int:
    from app.db import transaction
    from credit import rulesets

    async with transaction():
        row = await rulesets.create_draft(officer(author), json.dumps(body))
        await rulesets.submit(officer(author), row.id)
        await rulesets.approve(officer(approver), row.id)
    return int(row.id)


async def signed_consent(person: Person, taxpayer_pk: int) -> int:
    """A tax-data consent for the customer's taxpayer, signed and countersigned."""
    from app.db import transaction
    from credit.consent import request_consent
    from kyc import signatures
    from kyc.tables import SignedDocument

    async with transaction():
        consent, doc_id = await request_consent(customer_principal(person), taxpayer_pk, 12)
        await SignedDocument.update({SignedDocument.state: signatures.COMPLETED}).where(SignedDocument.id == doc_id)
    return int(consent.id)


async def decided_application(person: Person, taxpayer_pk: int, product: str = "tax_loan") -> tuple[int, int]:
    """A consented application decided through the service: (application id, decision id)."""
    from decimal import Decimal

    from app.db import transaction
    from credit import decisions
    from credit.schemas import ApplicationCreate

    await signed_consent(person, taxpayer_pk)
    data = ApplicationCreate(
        taxpayer_pk=taxpayer_pk, amount=Decimal("200000.00"), term_months=12, purpose="working_capital", product=product
    )
    gathered = await decisions.gather(customer_principal(person), data)
    async with transaction():
        out = await decisions.record(gathered)
    assert out is not None
    assert out.decision is not None
    return out.id, out.decision.id


async def matrix_ids(person: Person, taxpayer_pk: int, risk_officer_account: int) -> dict[str, int]:
    """Ids for the route matrix: a decided application of ``person`` (product
    ``tax_loan``, seeded and published) and a draft ruleset authored by the
    matrix's risk officer."""
    from app.db import transaction
    from app.security import Principal, Role, TokenKind
    from credit import rulesets

    async with transaction():
        await rulesets.seed_published_ruleset()
    application_id, decision_id = await decided_application(person, taxpayer_pk)
    author = Principal(risk_officer_account, Role.risk_officer, "", "", None, 0, TokenKind.api)
    async with transaction():
        draft = await rulesets.create_draft(author, json.dumps(approve_all(product_name())))
    return {"application_id": application_id, "decision_id": decision_id, "ruleset_id": int(draft.id)}
