"""HTTP surface of credit decisions: customers apply and get the decision in the
same request; staff read applications; risk officers replay decisions."""

from __future__ import annotations

from litestar import Controller, Response, get, post
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, JSONBody
from litestar.status_codes import HTTP_201_CREATED, HTTP_202_ACCEPTED

from app.security import Principal, Role, requires_role
from app.web import Panel, home_panel
from credit import decisions, replay
from credit.schemas import ApplicationCreate, ApplicationOut, ReplayOut, yuan
from credit.tables import Decision, LoanApplication

_customer = requires_role(Role.customer)
_readers = requires_role(Role.customer, Role.account_manager, Role.risk_officer, Role.admin)
_risk = requires_role(Role.risk_officer)


class ApplicationController(Controller):
    path = "/api/credit/applications"
    tags = ["credit"]

    @post(
        "/",
        operation_id="submit_loan_application",
        guards=[_customer],
        status_code=HTTP_201_CREATED,
        responses={
            HTTP_202_ACCEPTED: ResponseSpec(
                ApplicationOut, description="The tax gateway did not answer: the application waits and is retried."
            )
        },
    )
    async def submit(
        self, data: JSONBody[ApplicationCreate], principal: NamedDependency[Principal]
    ) -> Response[ApplicationOut]:
        """Apply for a loan on one of your taxpayers' tax records, under a signed
        tax-data consent; the decision comes back in this response (201), or the
        application waits for the tax gateway (202, ``data_pending``)."""
        out = await decisions.submit(await decisions.gather(principal, data))
        return Response(out, status_code=HTTP_202_ACCEPTED if out.state == decisions.DATA_PENDING else HTTP_201_CREATED)

    @get("/{application_id:int}", operation_id="get_loan_application", guards=[_readers])
    async def get_application(
        self, application_id: FromPath[int], principal: NamedDependency[Principal]
    ) -> ApplicationOut:
        """An application and its decision: its customer, or staff (audited)."""
        return await decisions.visible_application(principal, application_id)


class DecisionController(Controller):
    path = "/api/credit/decisions"
    tags = ["credit"]
    guards = [_risk]

    @post("/{decision_id:int}/replay", operation_id="replay_credit_decision", status_code=200)
    async def replay(self, decision_id: FromPath[int]) -> ReplayOut:
        """Recompute a decision from its stored feature snapshot with the ruleset
        version that made it, and report whether the result is identical."""
        return await replay.replay(decision_id)


@home_panel(Role.customer)
async def applications_panel(me: Principal) -> Panel:
    rows = (
        await LoanApplication.select(
            LoanApplication.id,
            LoanApplication.created_at,
            LoanApplication.amount_fen,
            LoanApplication.state,
            LoanApplication.taxpayer.name,
        )
        .where(LoanApplication.customer == me.customer_id)
        .order_by(LoanApplication.id, ascending=False)
        .limit(10)
    )
    outcomes = {
        d["application"]: d["outcome"]
        for d in await Decision.select(Decision.application, Decision.outcome).where(
            Decision.application.is_in([r["id"] for r in rows] or [0])
        )
    }
    return Panel(
        "My loan applications",
        ["Applied", "Business", "Amount", "Result"],
        [
            [
                r["created_at"].strftime("%Y-%m-%d"),
                r["taxpayer.name"],
                f"{yuan(r['amount_fen'])} CNY",
                outcomes.get(r["id"], r["state"].replace("_", " ")),
            ]
            for r in rows
        ],
        empty="No application yet.",
    )


CONTROLLERS = [ApplicationController, DecisionController]
PANELS = [applications_panel]
