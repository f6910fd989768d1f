"""The live video pages in a real browser: the customer's device check, consent and
queue (a phone-sized viewport), the account manager's console listing the waiting
customer, and a finished session's record. Media through Janus needs a private network
namespace and is driven by tests/integration/video instead: no call is placed here."""

from __future__ import annotations

import asyncio
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import PASSWORD, Person, make_customer, make_staff

pytestmark = pytest.mark.e2e
FIXTURES = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures"
PHONE = {"width": 390, "height": 844}
DESK = {"width": 1280, "height": 900}


async def _with_document(name: str) -> Person:
    """A customer whose identity case is open with the card submitted: what joining needs."""
    from app.db import transaction
    from kyc import service

    person = await make_customer(name)
    assert person.customer_id is not None
    portrait = (FIXTURES / "images" / "lp_d13_person_portrait.jpg").read_bytes()
    async with transaction():
        await service.grant_consent(person.customer_id, "face-2026-01", "127.0.0.1")
        case = await service.start_case(person.customer_id)
        await service.submit_document(case, "prc_resident_id", person.id_number, name, portrait)
    return person


async def _finished_session() -> int:
    """A session that was queued, then left by its customer before anyone answered."""
    from app.db import transaction
    from video import service
    from video.schemas import SessionCreate

    person = await _with_document("韩梅")
    assert person.customer_id is not None
    async with transaction():
        session = await service.start_session(
            person.customer_id, SessionCreate(purpose="claim", recording_consent=True)
        )
        await service.end(session.id, "customer_left")
    return int(session.id)


async def _scene() -> dict[str, Any]:
    joiner = await _with_document("李娜")
    return {
        "joiner": joiner.email,
        "newcomer": (await make_customer("王芳")).email,
        "manager": (await make_staff("account_manager")).email,
        "admin": (await make_staff("admin")).email,
        "finished": await _finished_session(),
    }


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


def test_device_check_shows_the_camera_and_the_microphone(
    server: str, scene: dict[str, Any], shots: Path, camera_browser: Any
) -> None:
    from playwright.sync_api import expect

    context = camera_browser.new_context(viewport=PHONE, device_scale_factor=1)
    page = context.new_page()
    _login(page, server, scene["newcomer"], "/video")
    expect(page.locator("#step-join")).to_be_hidden()
    page.click("#check")
    expect(page.locator("#device-status")).to_have_class("ok", timeout=10000)
    page.wait_for_function(
        "() => { const v = document.getElementById('preview'); return v.videoWidth > 0 && !v.paused; }"
    )
    assert page.evaluate("document.getElementById('preview').srcObject.getAudioTracks().length") == 1
    # Chromium's fake microphone beeps about once a second: the meter must see it.
    page.wait_for_function("() => window.micPeak > 0.01", timeout=10000)
    expect(page.locator("#step-join")).to_be_visible()
    expect(page.locator("#consent")).not_to_be_checked()
    expect(page.locator("#join")).to_be_disabled()
    page.screenshot(path=str(shots / "video-device-check-phone.png"), full_page=True)
    page.check("#consent")
    expect(page.locator("#join")).to_be_enabled()
    page.uncheck("#consent")
    expect(page.locator("#join")).to_be_disabled()
    context.close()


def test_denied_camera_is_explained(server: str, scene: dict[str, Any], browser: Any) -> None:
    from playwright.sync_api import expect

    context = browser.new_context(viewport=PHONE)  # no permission granted, no fake device
    page = context.new_page()
    _login(page, server, scene["newcomer"], "/video")
    page.click("#check")
    expect(page.locator("#device-status")).to_have_class("error", timeout=10000)
    expect(page.locator("#device-status")).to_contain_text(re.compile("permission|camera|microphone"))
    expect(page.locator("#step-join")).to_be_hidden()
    context.close()


def test_customer_without_a_card_is_sent_to_identity(server: str, scene: dict[str, Any], camera_browser: Any) -> None:
    from playwright.sync_api import expect

    context = camera_browser.new_context(viewport=PHONE)
    page = context.new_page()
    _login(page, server, scene["newcomer"], "/video")
    page.click("#check")
    page.check("#consent")
    page.click("#join")
    expect(page.locator("#message a[href='/identity']")).to_be_visible(timeout=10000)
    expect(page.locator("#step-waiting")).to_be_hidden()
    context.close()


def test_customer_joins_the_queue_and_the_console_lists_them(
    server: str, scene: dict[str, Any], shots: Path, camera_browser: Any, browser: Any
) -> None:
    from playwright.sync_api import expect

    phone = camera_browser.new_context(viewport=PHONE, device_scale_factor=1)
    page = phone.new_page()
    _login(page, server, scene["joiner"], "/video")
    page.click("#check")
    expect(page.locator("#step-join")).to_be_visible(timeout=10000)
    page.select_option("#purpose", "loan")
    page.check("#consent")
    page.click("#join")
    expect(page.locator("#step-waiting")).to_be_visible(timeout=10000)
    expect(page.locator("#queue-position")).to_have_text(re.compile(r"^\d+$"))
    expect(page.locator("#expected-wait")).not_to_have_text("—")
    page.wait_for_function("() => window.videoCall && window.videoCall.wsState === 'open'", timeout=10000)
    session_id = page.evaluate("Number(sessionStorage.getItem('branchless.videoSession'))")
    assert session_id > 0
    page.screenshot(path=str(shots / "video-queue-phone.png"), full_page=True)

    desk = browser.new_context(viewport=DESK, device_scale_factor=1)
    console = desk.new_page()
    _login(console, server, scene["manager"], "/console")
    row = console.locator(f"#queue tr[data-session='{session_id}']")
    expect(row).to_be_visible(timeout=10000)
    expect(row).to_contain_text("贷款")
    expect(row).not_to_contain_text("李娜")  # the name is masked
    expect(row.locator("button.accept")).to_be_enabled()
    console.screenshot(path=str(shots / "video-console.png"), full_page=True)

    # A reload resumes the waiting session; leaving takes the customer off the queue.
    page.reload()
    expect(page.locator("#step-waiting")).to_be_visible(timeout=10000)
    page.click("#leave")
    expect(page.locator("#step-outcome")).to_be_visible(timeout=10000)
    expect(page.locator("#outcome-title")).to_contain_text("left the queue")
    expect(row).to_be_hidden(timeout=10000)
    phone.close()
    desk.close()


def test_finished_session_shows_its_record(server: str, scene: dict[str, Any], shots: Path, browser: Any) -> None:
    from playwright.sync_api import expect

    context = browser.new_context(viewport=DESK, device_scale_factor=1)
    page = context.new_page()
    _login(page, server, scene["admin"], f"/console/sessions/{scene['finished']}")
    expect(page.locator("#state-badge")).to_have_text("cancelled")
    expect(page.locator("#checklist li")).to_have_count(4)
    expect(page.locator("#recording-state")).to_contain_text("no recording")
    expect(page.locator("#live")).to_have_count(0)
    page.screenshot(path=str(shots / "video-finished-session.png"), full_page=True)
    context.close()
