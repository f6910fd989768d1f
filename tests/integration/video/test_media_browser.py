"""Headless Chromium as the customer: its fake camera reaches Janus, a viewer and the analysis worker.

The browser, Janus and the aiortc peers all run in one private network namespace
(``browser_scenario``); the page's offer is brokered with the same ``Publisher.publish`` the
signalling layer uses. The screenshot of the customer's page is kept next to the findings.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.integration.video.netns_runner import run_scenario

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is missing: run `make system-test-deps`", pytrace=False)
    work = tmp_path_factory.mktemp("browser")
    return run_scenario("tests.integration.video.browser_scenario", "browser", work)


def test_chromium_publishes_its_camera_through_janus(browser: dict[str, Any]) -> None:
    assert browser["browser_connection_state"] == "connected"
    assert set(browser["browser_candidates"]) <= {"192.0.2.1", "192.0.2.2"}
    assert browser["viewer_size"] == [320, 240]
    # The fake camera file is 15 fps; Chromium lowers its rate when the shared CPU is busy,
    # so this checks that video flows steadily, and the benchmark measures rates.
    assert browser["viewer_fps"] >= 5
    assert browser["viewer_audio_frames"] > 50


def test_analysis_worker_sees_the_customers_face_from_the_browser(browser: dict[str, Any]) -> None:
    assert browser["analysis_reason"] == "room_destroyed"
    assert browser["frames_sampled"] >= 8
    assert browser["frame_sizes"] == [[320, 240]]
    assert browser["faces_per_frame"] == [1, 1, 1]
    assert max(browser["portrait_distances"]) < 0.5


def test_the_browsers_recording_converts(browser: dict[str, Any]) -> None:
    (recording,) = browser["recordings"]
    assert recording["video_codec"] == "vp8"
    assert (recording["width"], recording["height"]) == (320, 240)
    assert recording["video_frames"] > 40
    assert recording["audio_codec"] == "opus"


def test_customer_page_screenshot_shows_the_camera(browser: dict[str, Any]) -> None:
    shot = Path(browser["screenshot"])
    assert shot.stat().st_size > 20_000  # a camera picture, not an empty page
    print(f"customer page screenshot: {shot}")
