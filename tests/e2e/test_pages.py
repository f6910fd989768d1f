"""Each role logs in through the real login page and sees its home page."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import PASSWORD, make_customer, make_policy, make_staff, make_taxpayer

pytestmark = pytest.mark.e2e

HOME_TITLES = {
    "customer": "My Branchless",
    "account_manager": "Account manager",
    "risk_officer": "Risk office",
    "claims_adjuster": "Claims desk",
    "admin": "Administration",
}


def _login(page: Any, base: str, email: str, password: str) -> None:
    page.goto(f"{base}/")
    assert "/login" in page.url
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_load_state("networkidle")


async def _people() -> dict[str, str]:
    customer = await make_customer("张伟")
    assert customer.customer_id is not None
    await make_policy(customer.customer_id)
    await make_taxpayer(customer.customer_id)
    emails = {"customer": customer.email}
    for role in ("account_manager", "risk_officer", "claims_adjuster", "admin"):
        emails[role] = (await make_staff(role)).email
    return emails


@pytest.fixture(scope="module")
def people() -> dict[str, str]:
    # Playwright's sync API keeps an event loop on this thread: build data on another.
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, _people()).result()


@pytest.mark.parametrize("role", list(HOME_TITLES))
def test_role_logs_in_and_sees_its_home(
    role: str, server: str, browser: Any, people: dict[str, str], shots: Path
) -> None:
    mobile = role == "customer"
    context = browser.new_context(
        viewport={"width": 390, "height": 844} if mobile else {"width": 1280, "height": 800}, device_scale_factor=1
    )
    page = context.new_page()
    _login(page, server, people[role], PASSWORD)
    assert page.url.rstrip("/") == server
    assert page.locator("h1").inner_text() == HOME_TITLES[role]
    page.screenshot(path=str(shots / f"home-{role}.png"), full_page=True)
    if role == "customer":
        assert "My policies" in page.content()
        assert "My tax records" in page.content()
        assert "*" * 14 in page.content()  # identity number shown masked, last four digits only
    if role == "admin":
        assert page.locator('dt:has-text("Hash chain") + dd').inner_text() == "intact"
    page.click("text=Log out")
    page.wait_for_load_state("networkidle")
    assert "/login" in page.url
    context.close()


def test_wrong_password_shows_an_error(server: str, browser: Any, people: dict[str, str], shots: Path) -> None:
    page = browser.new_page()
    _login(page, server, people["admin"], "not the password")
    assert page.locator("[role=alert]").inner_text() == "Email or password is wrong."
    page.screenshot(path=str(shots / "login-error.png"))
    page.close()
