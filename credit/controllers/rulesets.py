"""HTTP surface of decision tables for risk officers: versions and their
four-eyes lifecycle, backtests, champion/challenger set-ups, stability and relief."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, delete, get, post, put
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED, HTTP_204_NO_CONTENT

from app import audit
from app.db import transaction
from app.security import Principal, Role, requires_role
from app.web import Panel, home_panel
from credit import backtests, challengers, rulesets
from credit.schemas import (
    PRODUCT_PATTERN,
    BacktestOut,
    ChallengerCreate,
    ChallengerOut,
    ChallengerReportOut,
    PsiReportOut,
    ReliefCandidateOut,
    ReviewNote,
    RulesetDetail,
    RulesetSummary,
)
from credit.tables import RulesetVersion

_risk = requires_role(Role.risk_officer)
_relief_readers = requires_role(Role.account_manager, Role.risk_officer, Role.admin)
ProductQuery = Annotated[str, QueryParameter(pattern=PRODUCT_PATTERN)]
ProductFilter = Annotated[str | None, QueryParameter(pattern=PRODUCT_PATTERN)]


class RulesetController(Controller):
    path = "/api/credit/rulesets"
    tags = ["credit: rulesets"]
    guards = [_risk]

    @get("/", operation_id="list_rulesets")
    async def list_rulesets(self, product: ProductFilter = None) -> list[RulesetSummary]:
        return await rulesets.list_versions(product)

    @post("/", operation_id="create_ruleset_draft", status_code=HTTP_201_CREATED)
    async def create(self, request: Request[Any, Any, Any], principal: NamedDependency[Principal]) -> RulesetDetail:
        """A new draft from the table's JSON (the form of ``credit/rulesets/*.json``).

        The body is read raw rather than decoded by the framework, so that a
        structural error and a rule error come back the same way: 422
        ``ruleset_invalid`` with every invalid cell in ``fields``, each at its
        path, e.g. ``rows[3].conditions[1].value``."""
        body = await request.body()
        async with transaction():
            row = await rulesets.create_draft(principal, body)
        return await rulesets.detail(row)

    @get("/{ruleset_id:int}", operation_id="get_ruleset")
    async def get_ruleset(self, ruleset_id: FromPath[int]) -> RulesetDetail:
        return await rulesets.detail(await rulesets.get_version(ruleset_id))

    @put("/{ruleset_id:int}", operation_id="update_ruleset_draft")
    async def update(
        self, ruleset_id: FromPath[int], request: Request[Any, Any, Any], principal: NamedDependency[Principal]
    ) -> RulesetDetail:
        """Replace a draft's table (its author only); errors as for a new draft."""
        body = await request.body()
        async with transaction():
            row = await rulesets.update_draft(principal, ruleset_id, body)
        return await rulesets.detail(row)

    @delete("/{ruleset_id:int}", operation_id="delete_ruleset_draft", status_code=HTTP_204_NO_CONTENT)
    async def delete_draft(self, ruleset_id: FromPath[int], principal: NamedDependency[Principal]) -> None:
        """Discard a draft that was never submitted (its author only)."""
        async with transaction():
            await rulesets.delete_draft(principal, ruleset_id)

    @post("/{ruleset_id:int}/copy", operation_id="copy_ruleset", status_code=HTTP_201_CREATED)
    async def copy(self, ruleset_id: FromPath[int], principal: NamedDependency[Principal]) -> RulesetDetail:
        """A new draft of your own from any version, numbered after the product's latest."""
        async with transaction():
            row = await rulesets.copy_version(principal, ruleset_id)
        return await rulesets.detail(row)

    @post("/{ruleset_id:int}/submit", operation_id="submit_ruleset", status_code=HTTP_200_OK)
    async def submit(self, ruleset_id: FromPath[int], principal: NamedDependency[Principal]) -> RulesetDetail:
        """Freeze a draft for review (its author)."""
        async with transaction():
            row = await rulesets.submit(principal, ruleset_id)
        return await rulesets.detail(row)

    @post("/{ruleset_id:int}/approve", operation_id="approve_ruleset", status_code=HTTP_200_OK)
    async def approve(self, ruleset_id: FromPath[int], principal: NamedDependency[Principal]) -> RulesetDetail:
        """Approve a submitted version: 403 ``four_eyes`` for its own author or submitter."""
        async with transaction():
            row = await rulesets.approve(principal, ruleset_id)
        return await rulesets.detail(row)

    @post("/{ruleset_id:int}/reject", operation_id="reject_ruleset", status_code=HTTP_200_OK)
    async def reject(
        self, ruleset_id: FromPath[int], data: JSONBody[ReviewNote], principal: NamedDependency[Principal]
    ) -> RulesetDetail:
        """Return a submitted version to its author as a draft, with a note."""
        async with transaction():
            row = await rulesets.reject(principal, ruleset_id, data.note)
        return await rulesets.detail(row)

    @post("/{ruleset_id:int}/publish", operation_id="publish_ruleset", status_code=HTTP_200_OK)
    async def publish(self, ruleset_id: FromPath[int], principal: NamedDependency[Principal]) -> RulesetDetail:
        """Publish an approved version, or roll back to a retired one; the product's
        published version retires and a running challenger experiment ends."""
        async with transaction():
            row = await rulesets.publish(principal, ruleset_id)
        return await rulesets.detail(row)

    @post("/{ruleset_id:int}/backtest", operation_id="backtest_ruleset", status_code=HTTP_200_OK)
    async def backtest(self, ruleset_id: FromPath[int], principal: NamedDependency[Principal]) -> BacktestOut:
        """Decide the backtest history with this version and compare with the
        published one: approval, bad rate, losses per grade and industry, swap set."""
        done = await backtests.run(ruleset_id)  # seconds of CPU: outside the transaction
        async with transaction():
            return await backtests.keep(principal, done)


class ChallengerController(Controller):
    path = "/api/credit/challenger"
    tags = ["credit: rulesets"]
    guards = [_risk]

    @get("/", operation_id="get_challenger")
    async def current(self, product: ProductQuery = "tax_loan") -> ChallengerOut:
        """The product's running experiment, else its latest one."""
        return challengers.challenger_out(await challengers.latest_challenger(product))

    @post("/", operation_id="start_challenger", status_code=HTTP_201_CREATED)
    async def start(self, data: JSONBody[ChallengerCreate], principal: NamedDependency[Principal]) -> ChallengerOut:
        """Let an approved version decide (``split``) or shadow (``shadow``) a share
        of the product's live applications; a running experiment ends first."""
        async with transaction():
            row = await challengers.start_challenger(principal, data)
        return challengers.challenger_out(row)

    @delete("/", operation_id="stop_challenger", status_code=HTTP_200_OK)
    async def stop(self, product: ProductQuery = "tax_loan") -> ChallengerOut:
        async with transaction():
            row = await challengers.end_challenger(product, reason="stopped")
        if row is None:
            raise challengers.NoChallenger(f"no running champion/challenger experiment for {product}")
        return challengers.challenger_out(row)

    @get("/report", operation_id="challenger_report")
    async def report(self, product: ProductQuery = "tax_loan") -> ChallengerReportOut:
        """Champion against challenger on the decisions of the latest experiment."""
        return await challengers.challenger_report(await challengers.latest_challenger(product))


class MonitoringController(Controller):
    path = "/api/credit"
    tags = ["credit: monitoring"]

    @get("/monitoring/psi", operation_id="credit_population_stability", guards=[_risk])
    async def psi(
        self,
        product: ProductQuery = "tax_loan",
        days: Annotated[int, QueryParameter(ge=1, le=366)] = 30,
    ) -> PsiReportOut:
        """Population stability of each feature of recent live decisions against
        the backtest population: < 0.10 stable, 0.10-0.25 watch, > 0.25 act."""
        return await backtests.psi_report(product, days)

    @get("/relief", operation_id="credit_relief_candidates", guards=[_relief_readers])
    async def relief(
        self,
        drop_share: Annotated[float, QueryParameter(name="dropShare", gt=0.0, le=1.0)] = 0.3,
        months: Annotated[int, QueryParameter(ge=1, le=12)] = 3,
    ) -> list[ReliefCandidateOut]:
        """Borrowers whose reported sales of the last ``months`` fell by more than
        ``dropShare`` against the same months a year before: call them and offer a deferral."""
        found = await backtests.relief_list(drop_share, months)
        await audit.record("credit.relief_listed", "taxpayer", "", detail={"taxpayers": [c.taxpayer_pk for c in found]})
        return found


@home_panel(Role.risk_officer)
async def rulesets_panel(me: Principal) -> Panel:
    rows = (
        await RulesetVersion.select(
            RulesetVersion.id, RulesetVersion.product, RulesetVersion.version, RulesetVersion.status
        )
        .where(RulesetVersion.status.is_in([rulesets.PUBLISHED, rulesets.SUBMITTED]))
        .order_by(RulesetVersion.product)
        .limit(20)
    )
    return Panel(
        "Decision rulesets",
        ["Product", "Version", "Status"],
        [[r["product"], r["version"], r["status"]] for r in rows],
        empty="No ruleset published or waiting for approval.",
        links=[f"/risk/rulesets/{r['id']}" for r in rows],
    )


CONTROLLERS = [RulesetController, ChallengerController, MonitoringController]
PANELS = [rulesets_panel]
