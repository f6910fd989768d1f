"""HTTP surface of the signing ceremony: read, sign, countersign, verify."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post
from litestar.datastructures import UploadFile
from litestar.di import NamedDependency
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromPath, JSONBody
from litestar.status_codes import HTTP_200_OK

from app.db import json_value, transaction
from app.errors import FieldError, Invalid
from app.schemas import Base
from app.security import Principal, Role, requires_role
from app.web import Panel, home_panel
from kyc import signatures
from kyc.controllers.cases import _read_upload
from kyc.signing.models import VerificationResult
from kyc.tables import SignedDocument

MAX_PDF_BYTES = 20 * 1024 * 1024
_readers = requires_role(Role.customer, Role.account_manager, Role.claims_adjuster, Role.admin)
_signers = requires_role(Role.customer, Role.account_manager, Role.claims_adjuster)


class SignerOut(Base):
    role: str
    name: str
    signed_at: str
    level: str
    evidence_digest: str


class DocumentOut(Base):
    id: int
    customer_id: int
    kind: str
    title: str
    state: str
    countersigner_role: str
    sha256: str
    """SHA-256 of the PDF as it stands: a signer sends it back to prove what they read."""
    original_sha256: str
    signers: list[SignerOut]
    created_at: datetime
    completed_at: datetime | None


class CountersignIn(Base):
    shown_sha256: str


@dataclass
class CustomerSignForm:
    shown_sha256: str
    intent: str
    """The customer's explicit confirmation; must be ``yes``."""
    frames: list[UploadFile] = field(default_factory=list)


@dataclass
class VerifyForm:
    file: UploadFile


def document_out(doc: SignedDocument) -> DocumentOut:
    return DocumentOut(
        id=doc.id,
        customer_id=doc.customer,
        kind=doc.kind,
        title=doc.title,
        state=doc.state,
        countersigner_role=doc.countersigner_role,
        sha256=doc.current_sha256,
        original_sha256=doc.original_sha256,
        signers=[
            SignerOut(
                role=s["role"],
                name=s["name"],
                signed_at=s["signed_at"],
                level=s["level"],
                evidence_digest=s["evidence_digest"],
            )
            for s in json_value(doc.signers)
        ],
        created_at=doc.created_at,
        completed_at=doc.completed_at,
    )


def _caller(request: Request[Any, Any, Any], principal: Principal) -> signatures.Caller:
    return signatures.Caller(
        principal=principal,
        ip=request.client.host if request.client else "",
        user_agent=request.headers.get("user-agent", ""),
        session_ref=signatures.session_ref(principal.token_id),
    )


class SignatureController(Controller):
    path = "/api/signatures"
    tags = ["signatures"]

    @get("/{doc_id:int}", operation_id="get_signed_document", guards=[_readers])
    async def get_document(self, doc_id: FromPath[int], principal: NamedDependency[Principal]) -> DocumentOut:
        return document_out(await signatures.visible_envelope(principal, doc_id))

    @get("/{doc_id:int}/pdf", operation_id="get_signed_document_pdf", guards=[_readers], media_type="application/pdf")
    async def get_pdf(self, doc_id: FromPath[int], principal: NamedDependency[Principal]) -> Response[bytes]:
        """The PDF as it stands now, to read before signing."""
        doc = await signatures.visible_envelope(principal, doc_id)
        return Response(
            signatures.current_pdf(doc),
            media_type="application/pdf",
            headers={
                "x-document-sha256": doc.current_sha256,
                "content-disposition": f'inline; filename="document-{doc.id}.pdf"',
            },
        )

    @post(
        "/{doc_id:int}/sign",
        operation_id="sign_document",
        guards=[requires_role(Role.customer)],
        status_code=HTTP_200_OK,
    )
    async def sign(
        self,
        doc_id: FromPath[int],
        principal: NamedDependency[Principal],
        request: Request[Any, Any, Any],
        data: Annotated[CustomerSignForm, Body(media_type=RequestEncodingType.MULTI_PART)],
    ) -> DocumentOut:
        """The customer signs what they read, with camera frames for a fresh face check."""
        if data.intent.strip().lower() != "yes":
            raise Invalid("confirm that you intend to sign", fields=[FieldError("$.intent", "must be yes")])
        if not 3 <= len(data.frames) <= 15:
            raise Invalid("send 3 to 15 camera frames", fields=[FieldError("$.frames", "count")])
        frames = [await _read_upload(f, 2 * 1024 * 1024, f"frames[{i}]") for i, f in enumerate(data.frames)]
        async with transaction():
            doc = await signatures.visible_envelope(principal, doc_id)
            doc = await signatures.customer_sign(doc, _caller(request, principal), data.shown_sha256, frames)
        return document_out(doc)

    @post(
        "/{doc_id:int}/countersign",
        operation_id="countersign_document",
        guards=[requires_role(Role.account_manager, Role.claims_adjuster)],
        status_code=HTTP_200_OK,
    )
    async def countersign(
        self,
        doc_id: FromPath[int],
        data: JSONBody[CountersignIn],
        principal: NamedDependency[Principal],
        request: Request[Any, Any, Any],
    ) -> DocumentOut:
        async with transaction():
            doc = await signatures.visible_envelope(principal, doc_id)
            doc = await signatures.staff_sign(doc, _caller(request, principal), data.shown_sha256)
        return document_out(doc)

    @get("/{doc_id:int}/verification", operation_id="verify_signed_document", guards=[_readers])
    async def verification(self, doc_id: FromPath[int], principal: NamedDependency[Principal]) -> VerificationResult:
        doc = await signatures.visible_envelope(principal, doc_id)
        return await signatures.verify_pdf(signatures.current_pdf(doc))

    @post(
        "/verify",
        operation_id="verify_uploaded_pdf",
        status_code=HTTP_200_OK,
        guards=[requires_role(Role.account_manager, Role.claims_adjuster, Role.risk_officer, Role.admin)],
    )
    async def verify_upload(
        self, data: Annotated[VerifyForm, Body(media_type=RequestEncodingType.MULTI_PART)]
    ) -> VerificationResult:
        """Verify any signed PDF (tampering, trust, coverage, signers)."""
        return await signatures.verify_pdf(await _read_upload(data.file, MAX_PDF_BYTES, "file"))


@home_panel(Role.customer, Role.account_manager, Role.claims_adjuster)
async def documents_panel(me: Principal) -> Panel:
    query = SignedDocument.select(
        SignedDocument.id, SignedDocument.title, SignedDocument.state, SignedDocument.updated_at
    ).order_by(SignedDocument.updated_at, ascending=False)
    if me.role == Role.customer:
        query = query.where(SignedDocument.customer == me.customer_id)
        title = "My documents"
    else:
        query = query.where(
            (SignedDocument.state == signatures.AWAITING_STAFF) & (SignedDocument.countersigner_role == me.role.value)
        )
        title = "Documents to countersign"
    rows = await query.limit(10)
    return Panel(
        title,
        ["Document", "State", "Updated"],
        [[r["title"], r["state"].replace("_", " "), r["updated_at"].strftime("%Y-%m-%d %H:%M")] for r in rows],
        empty="No documents.",
        links=[f"/documents/{r['id']}" for r in rows],
    )


CONTROLLERS = [SignatureController]
PANELS = [documents_panel]
