"""HTTP surface of credit/: tax records (decisions arrive with their issue)."""

from __future__ import annotations

from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.params import FromPath

from app.security import Principal, Role, requires_role
from app.web import Panel, home_panel
from credit import service
from credit.schemas import TaxpayerOut


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


CONTROLLERS = [TaxpayerController]
PANELS = [tax_panel]
