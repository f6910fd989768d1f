"""HTTP surface of claims/: policies (claims themselves arrive with their issue)."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.params import FromPath, QueryParameter

from app.money import fen_to_yuan
from app.security import Principal, Role, requires_role
from app.web import Panel, home_panel
from claims import service
from claims.schemas import PolicyOut
from claims.tables import Policy

_readers = requires_role(Role.customer, Role.claims_adjuster, Role.admin)


class PolicyController(Controller):
    path = "/api/policies"
    tags = ["claims"]
    guards = [_readers]

    @get("/", operation_id="list_policies")
    async def list_policies(
        self,
        principal: NamedDependency[Principal],
        limit: Annotated[int, QueryParameter(ge=1, le=500)] = 50,
        offset: Annotated[int, QueryParameter(ge=0)] = 0,
    ) -> list[PolicyOut]:
        """A customer sees their own policies; adjusters and admins see all."""
        return [service.policy_out(p) for p in await service.list_policies(principal, limit, offset)]

    @get("/{policy_id:int}", operation_id="get_policy")
    async def get_policy(self, policy_id: FromPath[int], principal: NamedDependency[Principal]) -> PolicyOut:
        return service.policy_out(await service.get_policy(principal, policy_id))


@home_panel(Role.customer, Role.claims_adjuster)
async def policies_panel(me: Principal) -> Panel:
    policies = await service.list_policies(me, 10, 0)
    title = "My policies" if me.role == Role.customer else "Policies"
    return Panel(
        title,
        ["Policy", "Product", "Covered until", "Sum insured"],
        [
            [
                p.policy_number,
                p.product,
                p.coverage_end.isoformat(),
                f"{fen_to_yuan(p.sum_insured_fen)} {p.currency}",
            ]
            for p in policies
        ],
        empty="No policies.",
    )


CONTROLLERS = [PolicyController]
PANELS = [policies_panel]
__all__ = ["CONTROLLERS", "PANELS", "Policy"]
