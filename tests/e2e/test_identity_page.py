"""Identity proofing in a real browser: consent, identity card upload, then the camera
check with the challenge prompts on screen (Chromium's fake camera plays a recording of
the person on the card)."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import PASSWORD, make_customer

pytestmark = pytest.mark.e2e
FIXTURES = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures"
PORTRAIT = FIXTURES / "images" / "lp_d13_person_portrait.jpg"


@pytest.fixture(scope="module")
def person() -> Any:
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, make_customer("蒋思")).result()


def test_customer_proves_identity_in_the_browser(server: str, person: Any, shots: Path, camera_browser: Any) -> None:
    from playwright.sync_api import expect

    context = camera_browser.new_context(viewport={"width": 390, "height": 844})
    page = context.new_page()
    page.goto(f"{server}/identity")
    page.fill("input[name=email]", person.email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{server}/identity")
    page.check("#agree")
    page.click("#consent")
    expect(page.locator("#step-document")).to_be_visible()
    page.fill("input[name=full_name]", "蒋思")
    page.fill("input[name=number]", person.id_number)
    page.set_input_files("input[name=portrait]", str(PORTRAIT))
    page.click("#document button[type=submit]")
    expect(page.locator("#step-camera")).to_be_visible(timeout=30000)
    page.screenshot(path=str(shots / "identity-card-received.png"), full_page=True)
    page.click("#start")
    expect(page.locator("#prompt")).not_to_have_text("", timeout=10000)
    page.screenshot(path=str(shots / "identity-prompt.png"), full_page=True)
    expect(page.locator("#message")).to_have_text("Checked.", timeout=90000)
    result = page.locator("#result").inner_text()
    assert "face matched" in result, result
    page.screenshot(path=str(shots / "identity-result.png"), full_page=True)
    context.close()
