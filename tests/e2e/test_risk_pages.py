"""A risk officer edits a decision table in the browser: an invalid cell is
refused at the cell, fixed, backtested with charts, submitted; another officer
approves and publishes it, and rolls back to the previous version."""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import PASSWORD, make_staff
from tests.integration.credit.builders import product_name, published, ruleset_body

pytestmark = pytest.mark.e2e
CELL = "rows[3].conditions[0].value"
"""``tax_paid_12m_fen < 1000000`` in the committed table: the cell the officer edits."""


async def _scene() -> dict[str, Any]:
    author, reviewer = await make_staff("risk_officer"), await make_staff("risk_officer")
    product = product_name()
    body = ruleset_body(product)
    assert body["rows"][3]["conditions"][0] == {"feature": "tax_paid_12m_fen", "op": "<", "value": 1000000}
    version_id = await published(body, reviewer, author)
    return {"author": author.email, "reviewer": reviewer.email, "product": product, "published": version_id}


@pytest.fixture(scope="module")
def scene() -> dict[str, Any]:
    # Playwright's sync API keeps an event loop on this thread: build data on another.
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, _scene()).result()


def _login(page: Any, base: str, email: str, target: str) -> None:
    page.goto(f"{base}{target}")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}{target}")


def _cell(page: Any, path: str) -> Any:
    return page.locator(f'[data-path="{path}"]')


def test_officer_edits_backtests_submits_and_another_publishes(
    server: str, browser: Any, scene: dict[str, Any], shots: Path
) -> None:
    from playwright.sync_api import expect

    author = browser.new_context(viewport={"width": 1440, "height": 900})
    page = author.new_page()
    _login(page, server, scene["author"], f"/risk/rulesets/{scene['published']}")
    expect(page.locator("#status")).to_have_text("published")
    expect(_cell(page, CELL)).to_be_disabled()  # a published table is read-only
    page.click("#copy")
    page.wait_for_url(lambda url: not url.endswith(f"/risk/rulesets/{scene['published']}"))
    draft_url = page.url
    expect(page.locator("#status")).to_have_text("draft")
    expect(page.locator("h1")).to_contain_text("version 2")

    # rows and conditions come and go
    rows = page.locator("#rows tbody tr")
    count = rows.count()
    page.click("#add-row")
    expect(rows).to_have_count(count + 1)
    page.locator(f"#rows tbody tr[data-path='rows[{count}]'] button[title='Remove row']").click()
    expect(rows).to_have_count(count)
    conditions = page.locator("td[data-path='rows[0].conditions'] .cond")
    expect(conditions).to_have_count(1)
    page.locator("td[data-path='rows[0].conditions'] button", has_text="+ condition").click()
    expect(conditions).to_have_count(2)
    conditions.nth(1).locator("button[title='Remove condition']").click()
    expect(conditions).to_have_count(1)

    # an invalid value is refused and shown at its cell
    _cell(page, CELL).fill("ten thousand")
    page.click("#save")
    error = page.locator(f'.cell-error[data-error-for="{CELL}"]')
    expect(error).to_be_visible()
    expect(error).to_contain_text("a number")
    expect(_cell(page, CELL)).to_have_class("invalid")
    expect(page.locator("#message")).to_contain_text("1 problem")
    _cell(page, CELL).scroll_into_view_if_needed()
    page.screenshot(path=str(shots / "risk-editor-cell-error.png"), full_page=False)

    _cell(page, CELL).fill("2000000")
    page.click("#save")
    expect(page.locator("#message")).to_have_text("Saved.")
    expect(page.locator(".cell-error")).to_have_count(0)

    # a backtest against the published version, with its charts
    page.click("#run-backtest")
    expect(page.locator("#chart-approval rect[data-grade='A']")).to_have_count(2, timeout=120_000)
    expect(page.locator("#chart-bad rect").first).to_be_visible()
    expect(page.locator("#charts .legend")).to_contain_text("published")
    expect(page.locator("#backtest-summary")).to_contain_text("Approval rate")
    page.locator("#backtest").scroll_into_view_if_needed()
    page.screenshot(path=str(shots / "risk-backtest.png"), full_page=True)

    page.click("#submit")
    expect(page.locator("#status")).to_have_text("submitted")
    expect(page.locator("#approve")).to_have_count(0)  # four eyes: not for the author
    author.close()

    reviewer = browser.new_context(viewport={"width": 1440, "height": 900})
    page = reviewer.new_page()
    target = draft_url.removeprefix(server)
    _login(page, server, scene["reviewer"], target)
    expect(page.locator("#status")).to_have_text("submitted")
    expect(_cell(page, CELL)).to_have_value("2000000")
    expect(page.locator("#chart-approval rect").first).to_be_visible()  # the author's backtest, kept
    page.click("#approve")
    expect(page.locator("#status")).to_have_text("approved")
    page.click("#publish")
    expect(page.locator("#status")).to_have_text("published")
    page.screenshot(path=str(shots / "risk-published.png"), full_page=False)

    page.goto(f"{server}/risk/rulesets")
    versions = page.locator("#versions tbody tr", has_text=scene["product"])
    expect(versions).to_have_count(2)
    expect(versions.filter(has_text="retired")).to_have_count(1)
    page.screenshot(path=str(shots / "risk-rulesets.png"), full_page=True)

    # roll back: the retired version is published again
    page.goto(f"{server}/risk/rulesets/{scene['published']}")
    page.click("#rollback")
    expect(page.locator("#status")).to_have_text("published")
    reviewer.close()

    stored = page_json(server, scene)
    assert stored == [("2", "retired"), ("1", "published")]


def page_json(server: str, scene: dict[str, Any]) -> list[tuple[str, str]]:
    """The versions as the database has them after the browser's clicks."""

    async def read() -> list[tuple[str, str]]:
        from credit.tables import RulesetVersion

        rows = (
            await RulesetVersion.select(RulesetVersion.version, RulesetVersion.status, RulesetVersion.body)
            .where(RulesetVersion.product == scene["product"])
            .order_by(RulesetVersion.id, ascending=False)
        )
        edited = json.loads(rows[0]["body"])
        assert edited["rows"][3]["conditions"][0]["value"] == 2000000
        return [(r["version"], r["status"]) for r in rows]

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, read()).result()
