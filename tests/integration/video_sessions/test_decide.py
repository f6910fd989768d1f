"""The manager's decision at the service level (video.service.decide) on sessions put in the
database as active: the rules that guard an approval, and what a decision completes."""

from __future__ import annotations

from typing import Any

import pytest

from tests.helpers import Person, make_staff
from tests.integration.video_sessions.conftest import active_session, audit_count, principal

FULL = {"identity_confirmed": True, "purpose_confirmed": True, "willingness_confirmed": True, "terms_understood": True}


async def _decide(manager: Person, session_id: int, decision: str, reason: str = "seen on camera") -> Any:
    from app.db import transaction
    from video import service
    from video.schemas import DecisionIn
    from video.tables import VideoSession

    async with transaction():
        session = await VideoSession.objects().where(VideoSession.id == session_id).first()
        assert session is not None
        return await service.decide(
            principal(manager, "account_manager"), session, DecisionIn(decision=decision, reason=reason)
        )


async def _case_state(session_id: int) -> str:
    from kyc.tables import KycCase
    from video.tables import VideoSession

    row = await VideoSession.select(VideoSession.case).where(VideoSession.id == session_id).first()
    assert row is not None
    case = await KycCase.select(KycCase.state).where(KycCase.id == row["case"]).first()
    assert case is not None
    return str(case["state"])


async def _untouched(session_id: int) -> None:
    from video.tables import VideoSession

    row = await VideoSession.objects().where(VideoSession.id == session_id).first()
    assert row is not None
    assert (row.state, row.decision, row.ended_at) == ("active", "", None)
    assert await audit_count("video.decision", session_id) == 0


async def test_approve_needs_every_checklist_item(alice: Person, manager: Person) -> None:
    from video import service

    session_id = await active_session(
        alice, manager, case_state="face_matched", checklist={"identity_confirmed": True, "purpose_confirmed": True}
    )
    with pytest.raises(service.ChecklistIncomplete) as caught:
        await _decide(manager, session_id, "approve")
    assert caught.value.status_code == 422
    assert caught.value.code == "checklist_incomplete"
    assert [f.path for f in caught.value.fields] == ["$.checklist.willingnessConfirmed", "$.checklist.termsUnderstood"]
    await _untouched(session_id)


async def test_approve_needs_a_face_match(alice: Person, manager: Person) -> None:
    from video import service

    session_id = await active_session(alice, manager, checklist=FULL, liveness={"phase": "passed"})
    with pytest.raises(service.FaceNotMatched) as caught:
        await _decide(manager, session_id, "approve")
    assert (caught.value.status_code, caught.value.code) == (409, "face_not_matched")
    assert "pending" in caught.value.message
    await _untouched(session_id)
    assert await _case_state(session_id) == "pending"


@pytest.mark.parametrize("liveness", [{}, {"phase": "running"}, {"phase": "failed", "reason": "replay"}])
async def test_a_face_matched_case_needs_the_liveness_check(
    alice: Person, manager: Person, liveness: dict[str, Any]
) -> None:
    from video import service

    session_id = await active_session(alice, manager, case_state="face_matched", checklist=FULL, liveness=liveness)
    with pytest.raises(service.LivenessNotPassed) as caught:
        await _decide(manager, session_id, "approve")
    assert (caught.value.status_code, caught.value.code) == (409, "liveness_not_passed")
    assert liveness.get("phase", "not run") in caught.value.message
    await _untouched(session_id)
    assert await _case_state(session_id) == "face_matched"


async def test_approve_verifies_the_case_and_ends_the_session(alice: Person, manager: Person) -> None:
    from kyc import service as kyc_service
    from kyc.tables import KycCase

    session_id = await active_session(
        alice, manager, case_state="face_matched", checklist=FULL, liveness={"phase": "incomplete"}
    )
    ended = await _decide(manager, session_id, "approve", "the customer followed every prompt")
    assert (ended.state, ended.end_reason, ended.decision) == ("ended", "decided", "approve")
    assert ended.decision_reason == "the customer followed every prompt"
    assert ended.ended_at is not None
    assert ended.recording_state == "none"  # no room was opened for this session
    case = await KycCase.objects().where(KycCase.id == ended.case).first()
    assert case is not None
    assert (case.state, case.reviewer) == ("verified", manager.account_id)
    assert case.review_reason == "attended video session: the customer followed every prompt"
    assert case.verified_until is not None
    assert await audit_count("video.decision", session_id) == 1
    assert await audit_count("video.session_ended", session_id) == 1
    assert await audit_count("kyc.case_verified", ended.case) == 1
    assert alice.customer_id is not None
    assert (await kyc_service.verdict(alice.customer_id)).verified


async def test_a_live_case_is_approved_without_another_liveness_check(alice: Person, manager: Person) -> None:
    session_id = await active_session(alice, manager, case_state="live", checklist=FULL)
    ended = await _decide(manager, session_id, "approve")
    assert ended.decision == "approve"
    assert await _case_state(session_id) == "verified"


async def test_a_room_that_existed_makes_the_recording_due(alice: Person, manager: Person) -> None:
    session_id = await active_session(alice, manager, room_id=4242, rec_dir="/nonexistent/rec")
    ended = await _decide(manager, session_id, "reject", "not the holder")
    assert ended.recording_state == "pending"


@pytest.mark.parametrize("case_state", ["pending", "face_matched", "flagged"])
async def test_reject_rejects_the_case_whatever_the_checklist(alice: Person, manager: Person, case_state: str) -> None:
    session_id = await active_session(alice, manager, case_state=case_state)
    ended = await _decide(manager, session_id, "reject", "the document does not belong to the caller")
    assert (ended.state, ended.end_reason, ended.decision) == ("ended", "decided", "reject")
    assert await _case_state(session_id) == "rejected"
    assert await audit_count("video.decision", session_id) == 1


async def test_only_the_accepting_manager_decides(alice: Person, manager: Person) -> None:
    from app.errors import NotFound

    session_id = await active_session(alice, manager, case_state="face_matched", checklist=FULL)
    other = await make_staff("account_manager")
    with pytest.raises(NotFound):
        await _decide(other, session_id, "reject")
    await _untouched(session_id)


async def test_a_decided_session_cannot_be_decided_again(alice: Person, manager: Person) -> None:
    from video import service

    session_id = await active_session(alice, manager, case_state="pending")
    await _decide(manager, session_id, "reject")
    with pytest.raises(service.NotActive):
        await _decide(manager, session_id, "approve")
