"""Appointments (预约办) in a real browser: a manager opens a day, a customer books, cancels and
books again on a phone, and the manager sees the booking (name masked) and withdraws a slot."""

# ruff: noqa: RUF001  # the pages separate times with an en dash on purpose

from __future__ import annotations

import asyncio
import secrets
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import PASSWORD, Person, make_customer, make_staff

pytestmark = pytest.mark.e2e


async def _people() -> tuple[Person, Person, str]:
    """A manager with a name of their own: other tests' managers may have open slots on the same day."""
    from app.tables import Account

    manager = await make_staff("account_manager")
    name = f"王经理 {secrets.token_hex(2)}"
    await Account.update({Account.display_name: name}).where(Account.id == manager.account_id)
    return manager, await make_customer("蒋思"), name


@pytest.fixture(scope="module")
def people() -> tuple[Person, Person, str]:
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, _people()).result()


def _login(page: Any, base: str, path: str, email: str) -> None:
    page.goto(f"{base}{path}")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}{path}")


def test_manager_opens_a_day_customer_books_it_manager_sees_it(
    server: str, browser: Any, people: tuple[Person, Person, str], shots: Path
) -> None:
    from playwright.sync_api import expect

    from video.appointments import local_today

    manager, customer, name = people
    day = (local_today() + timedelta(days=3)).isoformat()

    # the manager publishes 10:00-11:00 in 20-minute slots
    desk = browser.new_context(viewport={"width": 1280, "height": 800})
    page = desk.new_page()
    _login(page, server, "/console/day", manager.email)
    page.fill("#open input[name=date]", day)
    page.fill("#open input[name=start]", "10:00")
    page.fill("#open input[name=end]", "11:00")
    page.select_option("#open select[name=minutes]", "20")
    page.click("#open button[type=submit]")
    page.wait_for_url(f"{server}/console/day?date={day}&opened=3")
    expect(page.locator("#slots tbody tr[data-state=open]")).to_have_count(3)
    expect(page.locator("#message")).to_contain_text("3 slots are open")
    page.screenshot(path=str(shots / "appointments-manager-opened.png"), full_page=True)

    # the customer, on a phone, books, cancels and books again
    phone = browser.new_context(viewport={"width": 390, "height": 844})
    mobile = phone.new_page()
    mobile.on("dialog", lambda dialog: dialog.accept())
    _login(mobile, server, "/appointments", customer.email)
    expect(mobile.locator("#mine")).to_contain_text("No appointment booked.")
    mobile.click(f"#days button[data-day='{day}']")
    ours = mobile.locator("#slots .slot", has_text=name)
    expect(ours).to_have_count(3)
    expect(ours.first).to_contain_text("10:00–10:20")
    expect(mobile.locator("#slots")).not_to_contain_text("@")  # managers' names, never an email
    mobile.screenshot(path=str(shots / "appointments-customer-free-times.png"), full_page=True)
    mobile.select_option("#purpose", "claim")
    ours.first.locator("button").click()
    expect(mobile.locator("#message")).to_contain_text("Booked")
    expect(mobile.locator("#mine")).to_contain_text("10:00–10:20")
    expect(mobile.locator("#mine")).to_contain_text("理赔")
    expect(ours).to_have_count(2)
    expect(ours.first.locator("button")).to_be_disabled()  # one upcoming booking at a time
    mobile.screenshot(path=str(shots / "appointments-customer-booked.png"), full_page=True)

    mobile.click("#mine button[data-cancel]")
    expect(mobile.locator("#mine")).to_contain_text("No appointment booked.")
    expect(ours).to_have_count(3)
    ours.nth(1).locator("button").click()
    expect(mobile.locator("#mine")).to_contain_text("10:20–10:40")
    phone.close()

    # the manager's day: the booking with the name masked; an open slot withdrawn
    page.on("dialog", lambda dialog: dialog.accept())
    page.goto(f"{server}/console/day?date={day}")
    booked = page.locator("#slots tbody tr[data-state=booked]")
    expect(booked).to_have_count(1)
    expect(booked).to_contain_text("10:20–10:40")
    expect(booked).to_contain_text("蒋*")
    expect(page.locator("#slots")).not_to_contain_text("蒋思")
    page.locator("#slots tbody tr[data-state=open] button[data-cancel]").first.click()
    expect(page.locator("#slots tbody tr[data-state=cancelled]")).to_have_count(1)
    expect(page.locator("#count-open")).to_have_text("1")
    page.screenshot(path=str(shots / "appointments-manager-day.png"), full_page=True)
    desk.close()
