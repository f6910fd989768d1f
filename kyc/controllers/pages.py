"""Pages of kyc/: the signing ceremony as a person sees it."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get
from litestar.params import FromPath
from litestar.response import Template

from app.cpu import run_cpu
from app.security import Role, principal_of, requires_role
from app.settings import get_settings
from kyc import signatures
from kyc.controllers.signatures import document_out
from kyc.service import active_consent
from kyc.signing.documents import extract_text


class SigningPages(Controller):
    include_in_schema = False

    @get(
        "/documents/{doc_id:int}",
        operation_id="signing_page",
        guards=[requires_role(Role.customer, Role.account_manager, Role.claims_adjuster, Role.admin)],
    )
    async def signing_page(self, doc_id: FromPath[int], request: Request[Any, Any, Any]) -> Template:
        """Read the document, confirm intent, sign (customer, with the camera) or countersign (staff)."""
        me = principal_of(request)
        doc = await signatures.visible_envelope(me, doc_id)
        text = await run_cpu(extract_text, signatures.current_pdf(doc))
        return Template(
            "sign_document.html",
            context={
                "me": me,
                "doc": document_out(doc),
                "text": text,
                "can_sign": me.role == Role.customer and doc.state == signatures.AWAITING_CUSTOMER,
                "can_countersign": me.role.value == doc.countersigner_role and doc.state == signatures.AWAITING_STAFF,
            },
        )


class IdentityPages(Controller):
    include_in_schema = False

    @get("/identity", operation_id="identity_page", guards=[requires_role(Role.customer)])
    async def identity_page(self, request: Request[Any, Any, Any]) -> Template:
        """Consent, identity card and portrait, then the camera check with prompts on screen."""
        me = principal_of(request)
        assert me.customer_id is not None
        consent = await active_consent(me.customer_id)
        return Template(
            "identity.html",
            context={
                "me": me,
                "has_consent": consent is not None,
                "retention_days": get_settings().kyc_retention_days,
            },
        )


CONTROLLERS = [SigningPages, IdentityPages]
