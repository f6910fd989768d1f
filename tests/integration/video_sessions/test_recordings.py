"""Recordings after the call without Janus: a missing folder, retention, playback and its audit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tests.helpers import Person, bearer, make_staff
from tests.integration.video_sessions.conftest import active_session, audit_count

WEBM = b"\x1a\x45\xdf\xa3" + b"not really a webm, but bytes to seal" * 10


async def _ended(customer: Person, manager: Person, **values: object) -> int:
    from video.tables import VideoSession

    session_id = await active_session(customer, manager, **values)
    await VideoSession.update(
        {VideoSession.state: "ended", VideoSession.end_reason: "decided", VideoSession.ended_at: datetime.now(UTC)}
    ).where(VideoSession.id == session_id)
    return session_id


async def _recording(session_id: int, *, erase_after: datetime, participant: str = "customer") -> tuple[int, str]:
    from app.storage import blob_store
    from video.tables import SessionRecording

    stored = blob_store().put("recording", WEBM)
    row = SessionRecording(
        session=session_id,
        participant=participant,
        blob_id=stored.blob_id,
        sha256=stored.sha256,
        size_bytes=len(WEBM),
        duration_s=12.5,
        video_codec="vp8",
        audio_codec="opus",
        created_at=datetime.now(UTC),
        erase_after=erase_after,
    )
    await row.save()
    return int(row.id), stored.blob_id


async def test_a_missing_recordings_folder_fails_the_conversion(alice: Person, manager: Person, tmp_path: Path) -> None:
    from video import recordings
    from video.tables import VideoSession

    session_id = await _ended(alice, manager, room_id=77, rec_dir=str(tmp_path / "gone"), recording_state="pending")
    assert session_id in await recordings.pending_sessions(limit=10_000)
    assert await recordings.convert_session(session_id) == "failed"
    row = await VideoSession.objects().where(VideoSession.id == session_id).first()
    assert row is not None
    assert row.recording_state == "failed"
    assert await audit_count("video.recording_failed", session_id) == 1
    assert session_id not in await recordings.pending_sessions(limit=10_000)
    # idempotent: a session no longer pending is left as it is
    assert await recordings.convert_session(session_id) == "failed"
    assert await audit_count("video.recording_failed", session_id) == 1


async def test_a_session_without_a_room_folder_fails_too(alice: Person, manager: Person) -> None:
    from video import recordings

    session_id = await _ended(alice, manager, recording_state="pending")
    assert await recordings.convert_session(session_id) == "failed"
    assert await recordings.convert_session(999_999_999) == "none"


async def test_an_empty_recordings_folder_means_nothing_was_recorded(
    alice: Person, manager: Person, tmp_path: Path
) -> None:
    from video import recordings

    session_id = await _ended(alice, manager, room_id=78, rec_dir=str(tmp_path), recording_state="pending")
    assert await recordings.convert_session(session_id) == "none"
    assert await audit_count("video.recording_none", session_id) == 1


async def test_recordings_past_retention_are_erased_and_their_checksum_stays(alice: Person, manager: Person) -> None:
    from app.storage import blob_store
    from app.tables import AuditEntry
    from video import recordings
    from video.tables import SessionRecording

    session_id = await _ended(alice, manager)
    expired, expired_blob = await _recording(session_id, erase_after=datetime.now(UTC) - timedelta(seconds=1))
    kept, kept_blob = await _recording(
        session_id, erase_after=datetime.now(UTC) + timedelta(days=30), participant="manager"
    )
    assert await recordings.erase_expired() >= 1
    row = await SessionRecording.objects().where(SessionRecording.id == expired).first()
    assert row is not None
    assert (row.blob_id, row.erased_at is not None) == (None, True)
    assert not blob_store().delete("recording", expired_blob)  # already gone
    assert blob_store().get("recording", kept_blob) == WEBM
    entries = await AuditEntry.select(AuditEntry.detail).where(
        (AuditEntry.action == "video.recording_erased") & (AuditEntry.entity_id == str(expired))
    )
    assert len(entries) == 1
    assert row.sha256 in entries[0]["detail"]
    assert await audit_count("video.recording_erased", kept) == 0
    listed = await recordings.recordings_of(session_id)
    assert [(r.id, r.participant, r.erased) for r in listed] == [(expired, "customer", True), (kept, "manager", False)]
    await recordings.erase_expired()  # an erased recording is not erased again
    assert await audit_count("video.recording_erased", expired) == 1


async def test_playback_is_for_managers_and_audited(client: Any, alice: Person, manager: Person) -> None:
    from video import recordings

    c = client
    session_id = await _ended(alice, manager)
    recording_id, _ = await _recording(session_id, erase_after=datetime.now(UTC) + timedelta(days=30))
    url = f"/api/video/recordings/{recording_id}"
    r = await c.get(url, headers=await bearer(manager.account_id))
    assert r.status_code == 200, r.text
    assert r.content == WEBM
    assert r.headers["content-type"] == "video/webm"
    assert r.headers["cache-control"] == "private, no-store"
    assert await audit_count("video.recording_viewed", recording_id) == 1
    admin = await make_staff("admin")
    assert (await c.get(url, headers=await bearer(admin.account_id))).status_code == 200
    assert await audit_count("video.recording_viewed", recording_id) == 2
    for who in (alice, await make_staff("risk_officer"), await make_staff("claims_adjuster")):
        assert (await c.get(url, headers=await bearer(who.account_id))).status_code == 403
    assert (await c.get(url)).status_code == 401
    assert await audit_count("video.recording_viewed", recording_id) == 2

    listed = await c.get(f"/api/video/sessions/{session_id}/recordings", headers=await bearer(manager.account_id))
    assert listed.status_code == 200
    [entry] = listed.json()
    assert (entry["id"], entry["participant"], entry["durationS"], entry["sizeBytes"]) == (
        recording_id,
        "customer",
        12.5,
        len(WEBM),
    )
    assert (entry["videoCodec"], entry["audioCodec"], entry["erased"]) == ("vp8", "opus", False)

    from video.tables import SessionRecording

    await SessionRecording.update({SessionRecording.erase_after: datetime.now(UTC) - timedelta(seconds=1)}).where(
        SessionRecording.id == recording_id
    )
    await recordings.erase_expired()
    gone = await c.get(url, headers=await bearer(manager.account_id))
    assert gone.status_code == 404
    assert gone.json()["error"] == "not_found"
    assert await audit_count("video.recording_viewed", recording_id) == 2
    assert (await c.get("/api/video/recordings/999999999", headers=await bearer(manager.account_id))).status_code == 404
