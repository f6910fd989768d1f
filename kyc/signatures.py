"""The signing ceremony: customers sign with a signature bound to their session and
to a fresh face check, staff countersign, and anyone entitled can verify.

Other domains create envelopes (``create_envelope``) with the PDF they generated;
kyc/ knows nothing of what the document means. Signing and verification are
CPU-bound and run in the process pool.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from app import audit
from app.cpu import run_cpu
from app.db import json_value
from app.errors import Conflict, FieldError, Forbidden, Invalid, NotFound
from app.security import Principal, Role, may_see_customer
from app.storage import blob_store
from kyc import biometrics
from kyc.service import verdict
from kyc.signing import service as pdf_signing
from kyc.signing.errors import SigningError
from kyc.signing.models import SignerEvidence, SignOptions, VerificationResult
from kyc.tables import FaceTemplate, SignedDocument

AWAITING_CUSTOMER = "awaiting_customer"
AWAITING_STAFF = "awaiting_staff"
COMPLETED = "completed"
STAFF_SIGNER_ROLES = {Role.account_manager.value: "account_manager", Role.claims_adjuster.value: "insurer"}


class EnvelopeNotFound(NotFound):
    code = "document_not_found"


class WrongSigner(Forbidden):
    code = "not_your_signature"


class NotYourTurn(Conflict):
    code = "not_your_turn"


class DocumentChanged(Conflict):
    code = "document_changed"


class FaceCheckFailed(Forbidden):
    code = "face_check_failed"


class IdentityNotVerified(Forbidden):
    code = "identity_not_verified"


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Caller:
    """Who is signing, as the ceremony records it (never the session token itself)."""

    principal: Principal
    ip: str
    user_agent: str
    session_ref: str


def session_ref(token_id: int) -> str:
    return hashlib.sha256(f"branchless-session:{token_id}".encode()).hexdigest()[:32]


async def create_envelope(
    customer_id: int, *, kind: str, title: str, pdf: bytes, countersigner_role: str, created_by: int | None
) -> SignedDocument:
    """Store a freshly generated document, ready for the customer's signature."""
    pdf_signing.check_pdf(pdf, SignOptions().limits)
    stored = blob_store().put("document", pdf)
    at = _now()
    doc = SignedDocument(
        customer=customer_id,
        kind=kind,
        title=title,
        state=AWAITING_CUSTOMER,
        countersigner_role=countersigner_role,
        original_sha256=stored.sha256,
        current_blob=stored.blob_id,
        current_sha256=stored.sha256,
        signers=[],
        created_by=created_by,
        created_at=at,
        updated_at=at,
    )
    await doc.save()
    await audit.record(
        "signature.document_created", "signed_document", doc.id, after={"kind": kind, "sha256": stored.sha256}
    )
    return doc


async def visible_envelope(principal: Principal, doc_id: int) -> SignedDocument:
    doc = await SignedDocument.objects().where(SignedDocument.id == doc_id).first()
    if doc is None or not may_see_customer(principal, doc.customer):
        raise EnvelopeNotFound("no such document")
    return doc


def current_pdf(doc: SignedDocument) -> bytes:
    return blob_store().get("document", doc.current_blob)


def _check_shown(doc: SignedDocument, shown_sha256: str) -> None:
    if shown_sha256.strip().lower() != doc.current_sha256:
        raise DocumentChanged("the document changed since it was shown: reload it and read it again")


def _signing_env() -> tuple[Any, Any]:
    from kyc.signing.cli import key_config, tsa_config

    return key_config(os.environ), tsa_config(os.environ)


def _sign_in_worker(pdf: bytes, signer_name: str, reason: str, evidence: SignerEvidence, title: str) -> Any:
    key, tsa = _signing_env()
    return pdf_signing.sign_with_receipt(
        pdf,
        signer_name=signer_name,
        reason=reason,
        location="Branchless (remote)",
        evidence=evidence,
        key=key,
        tsa=tsa,
        options=SignOptions(document_title=title),
    )


def _verify_in_worker(pdf: bytes) -> VerificationResult:
    from pathlib import Path

    from kyc.signing.keys import DevKeyConfig, trust_roots

    key, _ = _signing_env()
    extra = [Path(p) for p in os.environ.get("BRANCHLESS_SIGNING_TRUST_ROOTS", "").split(os.pathsep) if p]
    roots = trust_roots(key if isinstance(key, DevKeyConfig) else None, extra)
    return pdf_signing.verify(pdf, roots)


async def _apply(
    doc: SignedDocument, caller: Caller, *, role: str, reason: str, evidence: SignerEvidence, next_state: str
) -> SignedDocument:
    pdf = current_pdf(doc)
    try:
        receipt = await run_cpu(_sign_in_worker, pdf, caller.principal.display_name, reason, evidence, doc.title)
    except SigningError as exc:
        raise Invalid(exc.message if hasattr(exc, "message") else str(exc), code=exc.code) from None
    stored = blob_store().put("document", receipt.pdf)
    signers = json_value(doc.signers)
    signers.append(
        {
            "role": role,
            "account_id": caller.principal.account_id,
            "name": caller.principal.display_name,
            "signed_at": receipt.signed_at.isoformat(),
            "field": receipt.field_name,
            "level": receipt.level,
            "evidence_digest": receipt.evidence_digest,
            "face_distance": evidence.face_distance,
        }
    )
    before = {"state": doc.state, "sha256": doc.current_sha256}
    doc.signers = signers
    doc.current_blob, doc.current_sha256 = stored.blob_id, stored.sha256
    doc.state = next_state
    doc.updated_at = _now()
    if next_state == COMPLETED:
        doc.completed_at = doc.updated_at
    await doc.save()
    await audit.record(
        "signature.signed",
        "signed_document",
        doc.id,
        before=before,
        after={"state": doc.state, "sha256": stored.sha256, "role": role, "evidence_digest": receipt.evidence_digest},
    )
    return doc


async def customer_sign(doc: SignedDocument, caller: Caller, shown_sha256: str, frames: list[bytes]) -> SignedDocument:
    """The customer's signature: their own document, their turn, the bytes they read,
    a verified identity and a face that matches it now."""
    principal = caller.principal
    if principal.role != Role.customer or principal.customer_id != doc.customer:
        raise WrongSigner("only the customer named on the document signs it here")
    if doc.state != AWAITING_CUSTOMER:
        raise NotYourTurn(f"the document is {doc.state}")
    _check_shown(doc, shown_sha256)
    found = await verdict(doc.customer)
    if not found.verified or found.case_id is None:
        raise IdentityNotVerified("prove your identity (video KYC) before signing")
    rows = (
        await FaceTemplate.select(FaceTemplate.engine, FaceTemplate.model_version, FaceTemplate.vector_enc)
        .where(FaceTemplate.customer == doc.customer)
        .order_by(FaceTemplate.id, ascending=False)
    )
    portrait: dict[str, tuple[str, Any]] = {}
    for row in rows:
        portrait.setdefault(row["engine"], (row["model_version"], biometrics.open_vector(row["vector_enc"])))
    if not portrait:
        raise IdentityNotVerified("no enrolled face to compare with; prove your identity again")
    check = await run_cpu(biometrics.check_face, frames, portrait)
    await audit.record(
        "signature.face_check",
        "signed_document",
        doc.id,
        after={"matched": check.matched, "distance": check.distance, "frames": check.usable_frames},
    )
    if not check.matched:
        raise FaceCheckFailed(
            "the face in the camera does not match your verified identity",
            fields=[FieldError("$.frames", f"{check.usable_frames} usable frames")],
        )
    evidence = SignerEvidence(
        role="customer",
        ip_address=caller.ip or "127.0.0.1",
        user_agent=caller.user_agent[:300],
        session_ref=caller.session_ref,
        kyc_case_id=str(found.case_id),
        face_distance=check.distance,
        face_threshold=check.threshold,
        face_checked_at=_now(),
        shown_sha256=doc.current_sha256,
    )
    return await _apply(
        doc,
        caller,
        role="customer",
        reason="本人确认签署 Signed by the customer",
        evidence=evidence,
        next_state=AWAITING_STAFF,
    )


async def staff_sign(doc: SignedDocument, caller: Caller, shown_sha256: str) -> SignedDocument:
    """The countersignature by the role the document names (account manager or insurer)."""
    principal = caller.principal
    if principal.role.value != doc.countersigner_role:
        raise WrongSigner(f"this document is countersigned by a {doc.countersigner_role.replace('_', ' ')}")
    if doc.state != AWAITING_STAFF:
        raise NotYourTurn(f"the document is {doc.state}")
    _check_shown(doc, shown_sha256)
    evidence = SignerEvidence(
        role=STAFF_SIGNER_ROLES.get(principal.role.value, "platform"),  # type: ignore[arg-type]
        ip_address=caller.ip or "127.0.0.1",
        user_agent=caller.user_agent[:300],
        session_ref=caller.session_ref,
        shown_sha256=doc.current_sha256,
    )
    return await _apply(
        doc, caller, role=principal.role.value, reason="审核确认 Countersigned", evidence=evidence, next_state=COMPLETED
    )


async def verify_pdf(pdf: bytes) -> VerificationResult:
    try:
        return await run_cpu(_verify_in_worker, pdf)
    except SigningError as exc:
        raise Invalid(str(exc), code=exc.code) from None
