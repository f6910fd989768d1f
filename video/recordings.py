"""Session recordings after the call: converted, sealed, checksummed, kept for the retention period.

Janus writes one ``.mjr`` file per stream of each publisher into the room's folder while the
call runs (the room is destroyed at the end, which closes them). The conversion job turns each
participant's streams into one WebM with ``janus-pp-rec`` (``video.media.recordings``), stores it
encrypted in the blob store, records its SHA-256 in the audit log with the retention date, and
deletes the raw files. Managers play recordings back from the console; each read is audited.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from app import audit
from app.db import transaction
from app.errors import NotFound
from app.security import Principal
from app.settings import get_settings
from app.storage import StoredBlob, blob_store
from video.media.recordings import RecordingInfo, convert_room_recordings
from video.schemas import RecordingOut
from video.tables import SessionRecording, VideoSession


def now() -> datetime:
    return datetime.now(UTC)


SETTLE_S = 10.0
"""Recordings touched this recently may still be written by Janus (the room is closing): the
sweep leaves them for its next round; the hub's own job, queued once the room is destroyed,
passes ``room_closed``."""


def _still_written(rec_dir: Path) -> bool:
    cutoff = time.time() - SETTLE_S
    return any(path.stat().st_mtime > cutoff for path in rec_dir.glob("*.mjr"))


def participant_of(base: str) -> str:
    """``customer-2`` (the customer's second publication, after a reconnect) → ``customer``."""
    return base.rsplit("-", 1)[0] if base.rsplit("-", 1)[-1].isdigit() else base


async def convert_session(session_id: int, *, room_closed: bool = False) -> str:
    """Convert and store a finished session's recordings; returns the new recording state.

    Idempotent: a session already stored (or with nothing to convert) is left as it is.
    The conversion runs in a thread outside any transaction (it takes seconds); the rows,
    the audit entries and the new state are then written in one."""
    session = await VideoSession.objects().where(VideoSession.id == session_id).first()
    if session is None or session.recording_state != "pending":
        return session.recording_state if session else "none"
    rec_dir = Path(session.rec_dir)
    if not session.rec_dir or not await asyncio.to_thread(rec_dir.is_dir):
        return await _finish(session, "failed", "the room's recordings folder is missing")
    if not room_closed and await asyncio.to_thread(_still_written, rec_dir):
        return "pending"  # the room is being closed: the sweep comes back in a minute
    out_dir = rec_dir / "converted"
    infos: list[RecordingInfo] = await asyncio.to_thread(convert_room_recordings, rec_dir, out_dir)
    if not infos:
        return await _finish(session, "none", "no media was recorded")
    erase_after = now() + timedelta(days=get_settings().video_recording_retention_days)
    store = blob_store()
    sealed = []
    for info in infos:
        data = await asyncio.to_thread(Path(info.path).read_bytes)
        sealed.append((info, await asyncio.to_thread(store.put, "recording", data)))
    async with transaction():
        again = await VideoSession.objects().where(VideoSession.id == session_id).first()
        if again is None or again.recording_state != "pending":  # another worker got there first
            for _, stored in sealed:
                store.delete("recording", stored.blob_id)
            return again.recording_state if again else "none"
        state = await _store(again, sealed, erase_after)
    await asyncio.to_thread(shutil.rmtree, rec_dir, True)  # the sealed copies are the record now
    return state


async def _store(session: VideoSession, sealed: list[tuple[RecordingInfo, StoredBlob]], erase_after: datetime) -> str:
    for info, stored in sealed:
        row = SessionRecording(
            session=session.id,
            participant=participant_of(info.base),
            blob_id=stored.blob_id,
            sha256=info.sha256,
            size_bytes=info.size_bytes,
            duration_s=info.duration_s,
            video_codec=info.video_codec or "",
            audio_codec=info.audio_codec or "",
            created_at=now(),
            erase_after=erase_after,
        )
        await row.save()
        await audit.record(
            "video.recording_stored",
            "video_recording",
            row.id,
            after={
                "session": session.id,
                "participant": row.participant,
                "sha256": info.sha256,
                "size_bytes": info.size_bytes,
                "duration_s": round(info.duration_s, 3),
                "erase_after": erase_after.isoformat(),
            },
        )
    return await _finish(session, "stored", f"{len(sealed)} recording(s)")


async def _finish(session: VideoSession, state: str, note: str) -> str:
    async with transaction():
        session.recording_state = state
        await session.save([VideoSession.recording_state])
        await audit.record("video.recording_" + state, "video_session", session.id, detail={"note": note})
    return state


async def pending_sessions(limit: int = 50) -> list[int]:
    rows = (
        await VideoSession.select(VideoSession.id)
        .where((VideoSession.recording_state == "pending") & VideoSession.state.is_in(["ended", "cancelled"]))
        .limit(limit)
    )
    return [r["id"] for r in rows]


async def recordings_of(session_id: int) -> list[RecordingOut]:
    rows = await SessionRecording.objects().where(SessionRecording.session == session_id).order_by(SessionRecording.id)
    return [
        RecordingOut(
            id=r.id,
            participant=r.participant,
            duration_s=r.duration_s,
            sha256=r.sha256,
            size_bytes=r.size_bytes,
            video_codec=r.video_codec,
            audio_codec=r.audio_codec,
            erase_after=r.erase_after,
            erased=r.erased_at is not None,
        )
        for r in rows
    ]


async def read_recording(principal: Principal, recording_id: int) -> bytes:
    row = await SessionRecording.objects().where(SessionRecording.id == recording_id).first()
    if row is None or row.blob_id is None or row.erased_at is not None:
        raise NotFound("no such recording (or erased after its retention period)")
    await audit.record("video.recording_viewed", "video_recording", row.id, detail={"session": row.session})
    return await asyncio.to_thread(blob_store().get, "recording", row.blob_id)


async def erase_expired(limit: int = 200) -> int:
    """Recordings past their retention period are deleted; their checksum stays in the audit log."""
    rows = (
        await SessionRecording.objects()
        .where((SessionRecording.erase_after <= now()) & SessionRecording.erased_at.is_null())
        .limit(limit)
    )
    store = blob_store()
    for row in rows:
        if row.blob_id:
            store.delete("recording", row.blob_id)
        row.blob_id = None
        row.erased_at = now()
        await row.save([SessionRecording.blob_id, SessionRecording.erased_at])
        await audit.record("video.recording_erased", "video_recording", row.id, detail={"sha256": row.sha256})
    return len(rows)
