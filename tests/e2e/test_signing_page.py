"""The signing ceremony in a real browser: the customer reads the consent, ticks the
box and signs in front of Chromium's fake camera (a recording of the enrolled person);
an account manager countersigns."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import PASSWORD, id_number, make_customer, make_staff, make_taxpayer

pytestmark = pytest.mark.e2e
FIXTURES = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures"


async def _scene() -> dict[str, Any]:
    from app.db import transaction
    from app.security import Principal, Role, TokenKind
    from credit.consent import request_consent
    from kyc import service

    customer = await make_customer("何静")
    manager = await make_staff("account_manager")
    assert customer.customer_id is not None
    portrait = (FIXTURES / "images" / "lp_d13_person_portrait.jpg").read_bytes()
    me = Principal(customer.account_id, Role.customer, customer.email, "何静", customer.customer_id, 0, TokenKind.api)
    boss = Principal(manager.account_id, Role.account_manager, manager.email, "M", None, 0, TokenKind.api)
    async with transaction():
        await service.grant_consent(customer.customer_id, "face-2026-01", "127.0.0.1")
        case = await service.start_case(customer.customer_id)
        case = await service.submit_document(case, "prc_resident_id", id_number(), "何静", portrait)
        await service.review_case(boss, case, "approve", "checked against the card")
        _, doc_id = await request_consent(me, await make_taxpayer(customer.customer_id), 12)
    return {"customer": customer.email, "manager": manager.email, "doc": doc_id}


@pytest.fixture(scope="module")
def scene() -> dict[str, Any]:
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, _scene()).result()


def _login(page: Any, base: str, email: str, target: str) -> None:
    page.goto(f"{base}{target}")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}{target}")


def test_customer_signs_and_manager_countersigns(
    server: str, scene: dict[str, Any], shots: Path, camera_browser: Any
) -> None:
    from playwright.sync_api import expect

    target = f"/documents/{scene['doc']}"
    customer = camera_browser.new_context(viewport={"width": 1280, "height": 900})
    page = customer.new_page()
    _login(page, server, scene["customer"], target)
    expect(page.locator("#state")).to_have_text("awaiting customer")
    page.wait_for_function("document.getElementById('camera').videoWidth > 0", timeout=15000)
    expect(page.locator("#sign")).to_be_disabled()
    page.check("#intent")
    page.wait_for_timeout(1500)  # let the fake camera run a little
    page.click("#sign")
    expect(page.locator("#message")).to_have_text("Signed. Thank you.", timeout=60000)
    page.reload()
    expect(page.locator("#state")).to_have_text("awaiting staff")
    page.screenshot(path=str(shots / "sign-customer.png"), full_page=True)
    customer.close()

    manager = camera_browser.new_context(viewport={"width": 1280, "height": 900})
    staff = manager.new_page()
    _login(staff, server, scene["manager"], target)
    staff.check("#intent")
    staff.click("#countersign")
    expect(staff.locator("#message")).to_have_text("Signed by everyone.", timeout=60000)
    staff.reload()
    expect(staff.locator("#state")).to_have_text("completed")
    expect(staff.locator("#signers li")).to_have_count(2)
    staff.screenshot(path=str(shots / "sign-countersigned.png"), full_page=True)
    manager.close()
