"""Tax-data consent: the document the taxpayer e-signs before any record is fetched."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from app import audit
from app.cpu import run_cpu
from app.errors import NotFound
from app.security import Principal, Role
from credit.tables import TaxConsent, Taxpayer
from kyc import signatures
from kyc.signing.documents import TaxDataConsent, render_consent
from kyc.tables import SignedDocument

DEFAULT_SCOPE = [
    "registration",
    "tax credit grades",
    "monthly VAT and income tax filings (24 months)",
    "arrears and penalties",
]
GRANTEE = "Branchless 远程金融服务平台"


async def request_consent(principal: Principal, taxpayer_pk: int, months: int) -> tuple[TaxConsent, int]:
    """Generate the consent PDF for the customer's own taxpayer and open its signing
    ceremony (the customer signs, an account manager countersigns)."""
    taxpayer = await Taxpayer.objects().where(Taxpayer.id == taxpayer_pk).first()
    if taxpayer is None or taxpayer.customer != principal.customer_id:
        raise NotFound("no such taxpayer")
    assert principal.customer_id is not None
    today = datetime.now(UTC).date()
    expires = today + timedelta(days=30 * months)
    consent = TaxConsent(
        customer=principal.customer_id,
        taxpayer_id=taxpayer.taxpayer_id,
        scope=DEFAULT_SCOPE,
        valid_from=today,
        expires_on=expires,
        created_at=datetime.now(UTC),
    )
    await consent.save()
    document = TaxDataConsent(
        consent_id=f"TC-{consent.id:08d}",
        taxpayer_name=taxpayer.name,
        taxpayer_id=taxpayer.taxpayer_id,
        grantee=GRANTEE,
        purpose="银税互动 tax-data credit assessment for a business loan",
        scope=DEFAULT_SCOPE,
        valid_from=today,
        expires_on=expires,
    )
    pdf = await run_cpu(render_consent, document)
    doc = await signatures.create_envelope(
        principal.customer_id,
        kind="tax_consent",
        title=f"Tax data consent {document.consent_id}",
        pdf=pdf,
        countersigner_role=Role.account_manager.value,
        created_by=principal.account_id,
    )
    consent.signed_document_id = doc.id
    await consent.save()
    await audit.record(
        "credit.tax_consent_requested",
        "tax_consent",
        consent.id,
        after={"taxpayer": taxpayer.taxpayer_id, "expires_on": expires.isoformat()},
    )
    return consent, int(doc.id)


async def active_consent(taxpayer_id: str, on: date | None = None) -> TaxConsent | None:
    """A consent the tax gateway may be called under: fully signed and in force
    (one query; the oldest such consent when several are)."""
    day = on or datetime.now(UTC).date()
    completed = SignedDocument.select(SignedDocument.id).where(SignedDocument.state == signatures.COMPLETED)
    return (
        await TaxConsent.objects()
        .where(
            (TaxConsent.taxpayer_id == taxpayer_id)
            & (TaxConsent.valid_from <= day)
            & (TaxConsent.expires_on >= day)
            & TaxConsent.signed_document_id.is_in(completed)
        )
        .order_by(TaxConsent.id)
        .first()
    )
