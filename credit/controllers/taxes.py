"""HTTP surface of credit/: tax records and the tax-data consent."""

from __future__ import annotations

from litestar import Controller, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody

from app.db import transaction
from app.security import Principal, Role, requires_role
from app.web import Panel, home_panel
from credit import consent as consent_service
from credit import service
from credit.schemas import TaxConsentCreate, TaxConsentOut, TaxpayerOut


class TaxpayerController(Controller):
    path = "/api/taxpayers"
    tags = ["credit"]
    guards = [requires_role(Role.customer, Role.risk_officer, Role.account_manager, Role.admin)]

    @get("/{taxpayer_pk:int}", operation_id="get_taxpayer")
    async def get_taxpayer(self, taxpayer_pk: FromPath[int], principal: NamedDependency[Principal]) -> TaxpayerOut:
        return await service.get_taxpayer(principal, taxpayer_pk)


@home_panel(Role.customer, Role.risk_officer)
async def tax_panel(me: Principal) -> Panel:
    rows = []
    for tp in await service.list_taxpayers(me, 10, 0):
        grades = service.grades_of(tp)
        latest = grades[max(grades)] if grades else "—"
        rows.append([tp.name, tp.taxpayer_id, latest, f"{service.yuan(await service.tax_paid_last_12(tp.id))} CNY"])
    title = "My tax records" if me.role == Role.customer else "Taxpayers on file"
    return Panel(
        title, ["Taxpayer", "Code", "Latest grade", "Tax paid, 12 months"], rows, empty="No tax records shared yet."
    )


class TaxConsentController(Controller):
    path = "/api/credit/tax-consents"
    tags = ["credit"]

    @post("/", operation_id="request_tax_consent", guards=[requires_role(Role.customer)], status_code=201)
    async def request_consent(
        self, data: JSONBody[TaxConsentCreate], principal: NamedDependency[Principal]
    ) -> TaxConsentOut:
        """Generate the tax-data consent for one of the customer's taxpayers; it takes
        effect once the customer has signed it and an account manager has countersigned."""
        async with transaction():
            consent, doc_id = await consent_service.request_consent(principal, data.taxpayer_pk, data.months)
        return TaxConsentOut(
            id=consent.id,
            taxpayer_id=consent.taxpayer_id,
            scope=list(consent.scope),
            valid_from=consent.valid_from,
            expires_on=consent.expires_on,
            signed_document_id=doc_id,
        )


CONTROLLERS = [TaxpayerController, TaxConsentController]
PANELS = [tax_panel]
