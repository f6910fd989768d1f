"""Whole sessions through the app (signalling, Janus, analysis, kyc/, recordings), in a private namespace.

Synthetic participants speak the same protocol as the pages (the browsers' run is
test_video_browsers.py). One scenario run per module; the tests assert on its findings.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.integration.video.netns_runner import run_scenario

MODULE = "tests.integration.video.session_scenario"


@pytest.fixture(scope="module")
def findings(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], dict[str, Any]]:
    work: Path = tmp_path_factory.mktemp("sessions")
    cache: dict[str, dict[str, Any]] = {}

    def get(name: str) -> dict[str, Any]:
        if name not in cache:
            cache[name] = run_scenario(MODULE, name, work, timeout_s=420.0)
        return cache[name]

    return get


def test_customer_queues_and_the_manager_sees_them(findings: Callable[[str], dict[str, Any]]) -> None:
    run = findings("app_session")
    assert run["customer_hello_state"] == "waiting"
    assert run["queue_position"] == 1
    [entry] = run["queue"]
    assert entry["sessionId"] == run["session_id"]
    assert entry["purpose"] == "loan"
    assert "*" in entry["customerName"]
    assert "视频客户0" not in entry["customerName"]


def test_both_sides_receive_each_others_media(findings: Callable[[str], dict[str, Any]]) -> None:
    run = findings("app_session")
    assert run["manager_first_frame_s"] is not None
    assert run["customer_first_frame_s"] is not None
    assert run["fps_manager_sees_customer"] >= 24  # the customer's source is 30 fps
    assert run["fps_customer_sees_manager"] >= 20  # the manager's source is 25 fps
    assert min(run["audio_frames"]) > 0


def test_the_server_matches_the_customers_face_against_the_portrait(findings: Callable[[str], dict[str, Any]]) -> None:
    run = findings("app_session")
    analysis = run["analysis"]
    assert analysis["matched"] is True
    assert analysis["distance"] <= analysis["threshold"]
    assert analysis["caseState"] == "face_matched"
    assert run["still"][0] == 201


def test_no_one_else_can_join_the_call(findings: Callable[[str], dict[str, Any]]) -> None:
    run = findings("app_session")
    assert run["other_customer_refused"][0] == 403
    assert run["other_manager_refused"][0] == 403
    assert run["other_manager_accept"] == [409, "already_accepted"]


def test_liveness_prompts_and_an_attended_approval_verify_the_case(findings: Callable[[str], dict[str, Any]]) -> None:
    run = findings("app_session")
    assert {p["kind"] for p in run["liveness_prompts"]} <= {"blink", "turn_left", "turn_right"}
    # The clip's person looks at the camera without blinking or turning on cue: no replay is
    # detected, the prompts were not performed; the manager who watched may still approve.
    assert run["liveness"]["phase"] == "incomplete"
    assert run["approve"] == [200, None, "ended"]
    session = run["session"]
    assert session["decision"] == "approve"
    assert session["caseState"] == "verified"
    assert session["endReason"] == "decided"
    assert run["customer_ended"] == {"reason": "decided", "decision": "approve"}


def test_the_recordings_of_both_participants_play_back(findings: Callable[[str], dict[str, Any]]) -> None:
    recording = findings("app_session")["recording"]
    assert recording["state"] == "stored"
    by_who = {f["participant"]: f for f in recording["files"]}
    assert set(by_who) == {"customer", "manager"}
    for item in by_who.values():
        assert item["status"] == 200
        assert item["sha256_matches"]
        assert item["streams"] == ["audio", "video"]
        assert item["duration_s"] > 5


def test_ready_reports_the_media_server(findings: Callable[[str], dict[str, Any]]) -> None:
    ready = findings("app_session")["ready"]
    assert ready["status"] == "ok"
    assert ready["checks"]["media_server"] == "ok"


def test_a_replayed_still_photo_fails_liveness_and_cannot_be_approved(
    findings: Callable[[str], dict[str, Any]],
) -> None:
    run = findings("app_still")
    assert run["liveness"]["phase"] == "failed"
    assert run["approve"][:2] == [409, "liveness_not_passed"]
    assert run["reject"] == [200, "ended"]
    assert run["session"]["decision"] == "reject"
    assert run["session"]["caseState"] == "rejected"


def test_a_full_queue_answers_busy_retry(findings: Callable[[str], dict[str, Any]]) -> None:
    assert findings("app_lifecycle")["busy"] == [503, "video_busy", "30"]


def test_a_participant_who_drops_ends_the_session_cleanly(findings: Callable[[str], dict[str, Any]]) -> None:
    run = findings("app_lifecycle")
    assert run["dropped"] == {"reason": "customer_left", "room_exists": False}
    assert run["children_after_call"] == run["children_in_call"] - 1  # the analysis worker is gone


def test_a_hundred_sessions_leave_nothing_behind(findings: Callable[[str], dict[str, Any]]) -> None:
    hundred = findings("app_lifecycle")["hundred"]
    assert hundred["rooms_left"] == 0
    assert hundred["fds_after"] <= hundred["fds_before"] + 2
    assert hundred["children"] == findings("app_lifecycle")["children_after_call"]


def test_janus_going_away_is_told_to_both_sides_and_to_ready(findings: Callable[[str], dict[str, Any]]) -> None:
    down = findings("app_lifecycle")["janus_down"]
    assert down["customer_error"] == "media_server_unavailable"
    assert down["manager_ended"] == "media_server_down"
    assert down["ready"][0] == 503
    assert down["ready"][1].startswith("unavailable")
    assert down["accept"] == [503, "media_server_unavailable"]
    assert down["after_failed_accept"] == "waiting"
