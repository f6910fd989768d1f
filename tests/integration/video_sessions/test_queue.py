"""Joining the walk-in queue, queue positions, the managers' queue, capacity, who sees a session."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.helpers import Person, bearer, make_customer, make_staff
from tests.integration.video_sessions.conftest import audit_count, customer_ready, open_case

JOIN = {"purpose": "loan", "recordingConsent": True}


async def _join(client: Any, person: Person, body: dict[str, Any] | None = None) -> Any:
    return await client.post("/api/video/sessions", json=body or JOIN, headers=await bearer(person.account_id))


async def test_joining_needs_consent_to_recording(client: Any, alice: Person) -> None:
    for body in ({"purpose": "loan", "recordingConsent": False}, {"purpose": "loan"}):
        r = await _join(client, alice, body)
        assert r.status_code == 422, r.text
        assert [f["path"] for f in r.json()["fields"]] == ["$.recordingConsent"]
    r = await _join(client, alice, {"purpose": "mortgage", "recordingConsent": True})
    assert r.status_code == 422
    assert r.json()["fields"][0]["path"] == "$.purpose"


async def test_joining_needs_an_open_case_with_its_document(client: Any) -> None:
    nobody = await make_customer()
    r = await _join(client, nobody)
    assert r.status_code == 409
    assert r.json()["error"] == "kyc_document_missing"
    no_document = await make_customer()
    await open_case(no_document, document=False)
    r = await _join(client, no_document)
    assert r.status_code == 409
    assert r.json()["error"] == "kyc_document_missing"
    closed = await make_customer()
    await open_case(closed, state="rejected")
    assert (await _join(client, closed)).json()["error"] == "kyc_document_missing"


async def test_joining_needs_face_consent(client: Any, alice: Person) -> None:
    """Withdrawing face consent leaves the case open (its biometrics erased): no analysed call then."""
    from app.db import transaction
    from kyc import service as kyc_service

    assert alice.customer_id is not None
    async with transaction():
        await kyc_service.withdraw_consent(alice.customer_id)
    r = await _join(client, alice)
    assert r.status_code == 403, r.text
    assert r.json()["error"] == "face_consent_required"


async def test_join_answers_the_waiting_session_and_a_second_join_conflicts(client: Any, alice: Person) -> None:
    r = await _join(client, alice)
    assert r.status_code == 201, r.text
    session = r.json()
    assert session["state"] == "waiting"
    assert session["queuePosition"] == 1
    assert session["expectedWaitS"] == 0
    assert session["customerId"] == alice.customer_id
    assert session["managerId"] is None
    assert session["purpose"] == "loan"
    assert session["caseState"] == "pending"
    assert session["recordingState"] == "none"
    assert session["checklist"] == {
        "identityConfirmed": False,
        "purposeConfirmed": False,
        "willingnessConfirmed": False,
        "termsUnderstood": False,
    }
    assert await audit_count("video.session_queued", session["id"]) == 1
    again = await _join(client, alice, {"purpose": "claim", "recordingConsent": True})
    assert again.status_code == 409
    assert again.json()["error"] == "session_exists"
    assert str(session["id"]) in again.json()["message"]
    mine = await client.get(f"/api/video/sessions/{session['id']}", headers=await bearer(alice.account_id))
    assert mine.status_code == 200
    assert mine.json()["id"] == session["id"]


async def test_queue_positions_oldest_first_and_the_managers_queue_masks_names(client: Any, manager: Person) -> None:
    names = ["张伟", "欧阳娜娜", "李雷"]
    people = [await customer_ready(name) for name in names]
    ids = []
    for person in people:
        r = await _join(client, person)
        assert r.status_code == 201, r.text
        ids.append(r.json()["id"])
    positions, waits = [], []
    for person, session_id in zip(people, ids, strict=True):
        r = await client.get(f"/api/video/sessions/{session_id}", headers=await bearer(person.account_id))
        positions.append(r.json()["queuePosition"])
        waits.append(r.json()["expectedWaitS"])
    assert positions == [1, 2, 3]
    assert waits[0] == 0
    assert waits[0] < waits[1] < waits[2]

    r = await client.get("/api/video/queue", headers=await bearer(manager.account_id))
    assert r.status_code == 200, r.text
    queue = r.json()
    assert [e["sessionId"] for e in queue] == ids
    assert [e["customerName"] for e in queue] == ["张*", "欧***", "李*"]
    for name in names:
        assert name not in r.text
    assert all(e["purpose"] == "loan" and e["caseState"] == "pending" for e in queue)
    assert all(e["waitedS"] >= 0 and e["appointmentAt"] is None for e in queue)
    assert queue[0]["summary"].startswith("Loan application")
    admin = await client.get("/api/video/queue", headers=await bearer((await make_staff("admin")).account_id))
    assert admin.status_code == 200
    for who in (people[0], await make_staff("risk_officer"), await make_staff("claims_adjuster")):
        denied = await client.get("/api/video/queue", headers=await bearer(who.account_id))
        assert denied.status_code == 403, who
    assert (await client.get("/api/video/queue")).status_code == 401


async def test_a_due_appointment_is_served_before_walk_ins(client: Any, manager: Person) -> None:
    from tests.integration.video_appointments.conftest import insert_slot

    walk_in, booked = await customer_ready("王芳"), await customer_ready("赵强")
    first = (await _join(client, walk_in)).json()
    slot = await insert_slot(manager, datetime.now(UTC) - timedelta(minutes=2), customer=booked)
    r = await _join(client, booked, {"purpose": "loan", "recordingConsent": True, "appointmentId": slot})
    assert r.status_code == 201, r.text
    assert r.json()["queuePosition"] == 1
    assert r.json()["managerId"] == manager.account_id
    assert r.json()["appointmentAt"] is not None
    queue = (await client.get("/api/video/queue", headers=await bearer(manager.account_id))).json()
    assert [e["sessionId"] for e in queue] == [r.json()["id"], first["id"]]
    assert queue[0]["appointmentAt"] is not None
    moved = await client.get(f"/api/video/sessions/{first['id']}", headers=await bearer(walk_in.account_id))
    assert moved.json()["queuePosition"] == 2


async def test_capacity_reached_answers_busy_with_retry_after(client: Any, settings_env: Callable[..., None]) -> None:
    settings_env(BRANCHLESS_VIDEO_MAX_SESSIONS="2")
    people = [await customer_ready() for _ in range(3)]
    for person in people[:2]:
        assert (await _join(client, person)).status_code == 201
    r = await _join(client, people[2])
    assert r.status_code == 503, r.text
    assert r.json()["error"] == "video_busy"
    assert int(r.headers["retry-after"]) > 0
    from video.tables import VideoSession

    assert not await VideoSession.exists().where(VideoSession.customer == people[2].customer_id)


async def test_two_simultaneous_joins_of_one_customer_make_one_session(client: Any, alice: Person) -> None:
    from video.tables import VideoSession

    first, second = await asyncio.gather(_join(client, alice), _join(client, alice))
    assert sorted([first.status_code, second.status_code]) == [201, 409]
    assert await VideoSession.count().where(VideoSession.customer == alice.customer_id) == 1


async def test_only_the_customer_and_managers_see_a_session(client: Any, alice: Person, bob: Person) -> None:
    session_id = (await _join(client, alice)).json()["id"]
    url = f"/api/video/sessions/{session_id}"
    other = await client.get(url, headers=await bearer(bob.account_id))
    assert other.status_code == 404
    assert other.json()["error"] == "not_found"
    for role, status in (("account_manager", 200), ("admin", 200), ("risk_officer", 403), ("claims_adjuster", 403)):
        staff = await make_staff(role)
        assert (await client.get(url, headers=await bearer(staff.account_id))).status_code == status, role
    assert (await client.get(url)).status_code == 401
    assert (
        await client.get("/api/video/sessions/999999999", headers=await bearer(alice.account_id))
    ).status_code == 404
