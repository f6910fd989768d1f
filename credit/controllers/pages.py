"""Pages of credit/ for risk officers: the rulesets, and a version's decision
table in an editor with its backtest charts and lifecycle buttons.

The pages render the data; the editor's buttons call the JSON API
(``/api/credit/rulesets/...``) with the page's session and CSRF token, so
every rule (validation at the cell, four eyes, one published version) is
enforced in one place, the service.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Controller, Request, get
from litestar.params import FromPath
from litestar.response import Template

from app.security import Role, principal_of, requires_role
from credit import backtests, rulesets
from credit.engine.features import CATEGORIES, FEATURE_KINDS
from credit.engine.ruleset import HIT_POLICIES, OPS, OUTCOMES


class RiskPages(Controller):
    include_in_schema = False
    guards = [requires_role(Role.risk_officer)]

    @get("/risk/rulesets", operation_id="risk_rulesets_page")
    async def rulesets_page(self, request: Request[Any, Any, Any]) -> Template:
        """Every version of every product, newest first."""
        versions = await rulesets.list_versions()
        return Template("credit_rulesets.html", context={"me": principal_of(request), "versions": versions})

    @get("/risk/rulesets/{ruleset_id:int}", operation_id="risk_ruleset_page")
    async def ruleset_page(self, ruleset_id: FromPath[int], request: Request[Any, Any, Any]) -> Template:
        """The decision table of one version: editable for its author while a draft."""
        me = principal_of(request)
        row = await rulesets.get_version(ruleset_id)
        detail = await rulesets.detail(row)
        published = await rulesets.published_version(row.product)
        latest = await backtests.latest_backtest(row.id)
        mine = row.author == me.account_id
        return Template(
            "credit_ruleset.html",
            context={
                "me": me,
                "version": detail,
                "published": published,
                "editor": {
                    "id": row.id,
                    "status": row.status,
                    "editable": row.status == rulesets.DRAFT and mine,
                    "ruleset": msgspec.to_builtins(detail.body),
                    "backtest": msgspec.to_builtins(latest) if latest is not None else None,
                    "features": FEATURE_KINDS,
                    "categories": {k: list(v) for k, v in CATEGORIES.items()},
                    "ops": list(OPS),
                    "outcomes": list(OUTCOMES),
                    "hitPolicies": list(HIT_POLICIES),
                },
                "can": {
                    "submit": row.status == rulesets.DRAFT and mine,
                    "approve": row.status == rulesets.SUBMITTED and me.account_id not in (row.author, row.submitted_by),
                    "reject": row.status == rulesets.SUBMITTED,
                    "publish": row.status == rulesets.APPROVED,
                    "rollback": row.status == rulesets.RETIRED,
                },
            },
        )


CONTROLLERS = [RiskPages]
