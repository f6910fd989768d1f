"""Accepting while the media server is down, readiness, ending and cancelling, the manager's
steps on sessions that are not (or not really) live - all without Janus."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.helpers import Person, bearer, make_staff
from tests.integration.video_sessions.conftest import active_session, audit_count, serve

JOIN = {"purpose": "claim", "recordingConsent": True}
CHECKLIST = {"identityConfirmed": True, "purposeConfirmed": True, "willingnessConfirmed": True, "termsUnderstood": True}


async def _waiting(client: Any, person: Person) -> int:
    r = await client.post("/api/video/sessions", json=JOIN, headers=await bearer(person.account_id))
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


async def test_accept_while_janus_is_down_gives_the_customer_back_to_the_queue(
    client: Any, alice: Person, manager: Person
) -> None:
    from video.tables import VideoSession

    session_id = await _waiting(client, alice)
    r = await client.post(f"/api/video/sessions/{session_id}/accept", headers=await bearer(manager.account_id))
    assert r.status_code == 503, r.text
    assert r.json()["error"] == "media_server_unavailable"
    row = await VideoSession.objects().where(VideoSession.id == session_id).first()
    assert row is not None
    assert (row.state, row.manager, row.accepted_at, row.room_id, row.rec_dir) == ("waiting", None, None, None, "")
    assert await audit_count("video.session_returned", session_id) == 1
    seen = (await client.get(f"/api/video/sessions/{session_id}", headers=await bearer(alice.account_id))).json()
    assert (seen["state"], seen["managerId"], seen["queuePosition"]) == ("waiting", None, 1)
    queue = (await client.get("/api/video/queue", headers=await bearer(manager.account_id))).json()
    assert [e["sessionId"] for e in queue] == [session_id]
    # another try is a fresh attempt, not "already accepted"
    again = await client.post(f"/api/video/sessions/{session_id}/accept", headers=await bearer(manager.account_id))
    assert again.json()["error"] == "media_server_unavailable"


async def test_a_failed_accept_keeps_an_appointment_with_its_manager(client: Any, manager: Person) -> None:
    from tests.integration.video_appointments.conftest import insert_slot
    from tests.integration.video_sessions.conftest import customer_ready
    from video.tables import VideoSession

    booked = await customer_ready("赵强")
    slot = await insert_slot(manager, datetime.now(UTC) - timedelta(minutes=1), customer=booked)
    r = await client.post(
        "/api/video/sessions", json={**JOIN, "appointmentId": slot}, headers=await bearer(booked.account_id)
    )
    session_id = r.json()["id"]
    other = await make_staff("account_manager")
    taken = await client.post(f"/api/video/sessions/{session_id}/accept", headers=await bearer(other.account_id))
    assert (taken.status_code, taken.json()["error"]) == (409, "already_accepted")
    r = await client.post(f"/api/video/sessions/{session_id}/accept", headers=await bearer(manager.account_id))
    assert r.status_code == 503
    row = await VideoSession.objects().where(VideoSession.id == session_id).first()
    assert row is not None
    assert (row.state, row.manager) == ("waiting", manager.account_id)
    taken = await client.post(f"/api/video/sessions/{session_id}/accept", headers=await bearer(other.account_id))
    assert taken.json()["error"] == "already_accepted"


async def test_only_account_managers_accept(client: Any, alice: Person, bob: Person) -> None:
    session_id = await _waiting(client, alice)
    url = f"/api/video/sessions/{session_id}/accept"
    for who in (alice, bob, await make_staff("admin"), await make_staff("risk_officer")):
        assert (await client.post(url, headers=await bearer(who.account_id))).status_code == 403


async def test_accepting_an_active_or_ended_session_conflicts(client: Any, alice: Person, manager: Person) -> None:
    session_id = await active_session(alice, manager)
    other = await make_staff("account_manager")
    r = await client.post(f"/api/video/sessions/{session_id}/accept", headers=await bearer(other.account_id))
    assert (r.status_code, r.json()["error"]) == (409, "already_accepted")


async def test_ready_fails_when_the_configured_janus_is_down(client: Any, janus_down: str) -> None:
    r = await client.get("/ready")
    assert r.status_code == 503, r.text
    body = r.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["media_server"] == f"unavailable at {janus_down}"
    assert body["checks"]["database"] == "ok"


async def test_ready_only_reports_janus_in_development(settings_env: Callable[..., None]) -> None:
    from app.factory import create_app

    settings_env(BRANCHLESS_JANUS_URL="")
    async with serve(create_app()) as c:
        r = await c.get("/ready")
    assert r.status_code == 200, r.text
    assert r.json()["checks"]["media_server"].startswith("unavailable at http://127.0.0.1:8088")


async def test_the_customer_cancels_a_waiting_session(client: Any, alice: Person, bob: Person) -> None:
    first, second = await _waiting(client, alice), await _waiting(client, bob)
    r = await client.post(f"/api/video/sessions/{first}/end", headers=await bearer(alice.account_id))
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["state"], body["endReason"], body["queuePosition"]) == ("cancelled", "customer_left", None)
    assert body["endedAt"] is not None
    assert body["recordingState"] == "none"
    assert await audit_count("video.session_ended", first) == 1
    moved = await client.get(f"/api/video/sessions/{second}", headers=await bearer(bob.account_id))
    assert moved.json()["queuePosition"] == 1
    again = await client.post(f"/api/video/sessions/{first}/end", headers=await bearer(alice.account_id))
    assert (again.status_code, again.json()["endReason"]) == (200, "customer_left")
    assert await audit_count("video.session_ended", first) == 1
    rejoined = await client.post("/api/video/sessions", json=JOIN, headers=await bearer(alice.account_id))
    assert rejoined.status_code == 201


async def test_only_its_customer_or_its_manager_ends_a_session(
    client: Any, alice: Person, bob: Person, manager: Person
) -> None:
    waiting = await _waiting(client, alice)
    for who, status in ((bob, 404), (manager, 404), (await make_staff("risk_officer"), 403)):
        r = await client.post(f"/api/video/sessions/{waiting}/end", headers=await bearer(who.account_id))
        assert r.status_code == status, who
    assert (await client.post(f"/api/video/sessions/{waiting}/end")).status_code == 401


async def test_the_manager_ends_an_active_session(client: Any, alice: Person, manager: Person) -> None:
    session_id = await active_session(alice, manager)
    r = await client.post(f"/api/video/sessions/{session_id}/end", headers=await bearer(manager.account_id))
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["state"], body["endReason"]) == ("ended", "manager_left")
    assert body["recordingState"] == "none"  # no room was ever opened: nothing to convert


async def test_the_managers_steps_need_an_active_session(client: Any, alice: Person, manager: Person) -> None:
    session_id = await _waiting(client, alice)
    headers = await bearer(manager.account_id)
    base = f"/api/video/sessions/{session_id}"
    for r in (
        await client.put(f"{base}/checklist", json=CHECKLIST, headers=headers),
        await client.post(f"{base}/decision", json={"decision": "reject", "reason": "no"}, headers=headers),
        await client.post(f"{base}/liveness", headers=headers),
        await client.post(f"{base}/stills", headers=headers),
    ):
        assert r.status_code == 409, r.text
        assert r.json()["error"] == "not_active"


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({"decision": "maybe", "reason": "unsure"}, "$.decision"),
        ({"decision": "approve", "reason": ""}, "$.reason"),
        ({"decision": "reject", "reason": "x" * 501}, "$.reason"),
        ({"decision": "approve"}, "reason"),
    ],
)
async def test_decision_body_is_validated(
    client: Any, alice: Person, manager: Person, body: dict[str, Any], path: str
) -> None:
    session_id = await active_session(alice, manager)
    r = await client.post(
        f"/api/video/sessions/{session_id}/decision", json=body, headers=await bearer(manager.account_id)
    )
    assert r.status_code == 422, r.text
    field = r.json()["fields"][0]
    assert field["path"] == path if path.startswith("$") else path in field["message"]


async def test_checklist_and_decision_of_an_active_session_over_http(
    client: Any, alice: Person, manager: Person
) -> None:
    """The database says active (this process holds no media for it): the steps that need no
    media work, the ones that need it answer 503."""
    from kyc.tables import KycCase

    session_id = await active_session(alice, manager)
    headers = await bearer(manager.account_id)
    base = f"/api/video/sessions/{session_id}"
    other = await bearer((await make_staff("account_manager")).account_id)
    assert (await client.put(f"{base}/checklist", json=CHECKLIST, headers=other)).status_code == 404
    r = await client.put(f"{base}/checklist", json={**CHECKLIST, "termsUnderstood": False}, headers=headers)
    assert r.status_code == 200, r.text
    assert r.json()["checklist"] == {**CHECKLIST, "termsUnderstood": False}
    assert await audit_count("video.checklist", session_id) == 1
    for step in ("liveness", "stills"):
        r = await client.post(f"{base}/{step}", headers=headers)
        assert (r.status_code, r.json()["error"]) == (503, "media_server_unavailable"), step
    approve = await client.post(f"{base}/decision", json={"decision": "approve", "reason": "ok"}, headers=headers)
    assert (approve.status_code, approve.json()["error"]) == (422, "checklist_incomplete")
    assert [f["path"] for f in approve.json()["fields"]] == ["$.checklist.termsUnderstood"]
    assert (
        await client.post(f"{base}/decision", json={"decision": "reject", "reason": "x"}, headers=other)
    ).status_code == 404
    r = await client.post(f"{base}/decision", json={"decision": "reject", "reason": "not the holder"}, headers=headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["state"], body["endReason"], body["decision"], body["decisionReason"]) == (
        "ended",
        "decided",
        "reject",
        "not the holder",
    )
    assert body["caseState"] == "rejected"
    case = await KycCase.objects().where(KycCase.id == body["caseId"]).first()
    assert case is not None
    assert (case.state, case.reviewer) == ("rejected", manager.account_id)


async def test_stills_and_recordings_of_a_session_without_any(client: Any, alice: Person, manager: Person) -> None:
    session_id = await _waiting(client, alice)
    base = f"/api/video/sessions/{session_id}"
    for path in ("stills", "recordings"):
        r = await client.get(f"{base}/{path}", headers=await bearer(manager.account_id))
        assert (r.status_code, r.json()) == (200, []), path
        assert (await client.get(f"{base}/{path}", headers=await bearer(alice.account_id))).status_code == 403
    r = await client.get(f"{base}/stills/999999", headers=await bearer(manager.account_id))
    assert r.status_code == 404
