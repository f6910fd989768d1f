"""Live video sessions in the database: the walk-in queue, acceptance, checklist, decision, end.

The live media state (Janus room, participants, analysis) is held by ``video.hub`` in the
app process that owns the session; this module is the record of truth: what state a
session is in, who may see it, what the manager decided. Every change is audited in the
transaction that makes it. Call these inside ``app.db.transaction()``.
"""

from __future__ import annotations

import os
import socket
import statistics
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from piccolo.engine.postgres import PostgresEngine

from app import audit
from app.crypto import register_encrypted, seal, unseal
from app.db import engine, json_value
from app.errors import AppError, Conflict, FieldError, Invalid, NotFound
from app.security import Principal, Role
from app.settings import get_settings
from app.storage import blob_store
from app.tables import Customer
from kyc import service as kyc_service
from kyc.errors import ConsentRequired
from kyc.states import OPEN, CaseState
from kyc.tables import KycCase, KycEvidence
from video import appointments
from video.media.videoroom import RoomCredentials
from video.schemas import CHECKLIST_ITEMS, Checklist, DecisionIn, QueueEntry, SessionCreate, SessionOut, StillOut
from video.tables import AppointmentSlot, VideoSession

register_encrypted(VideoSession, "room_secret_enc", "room_pin_enc")

WAITING, ACTIVE, ENDED, CANCELLED = "waiting", "active", "ended", "cancelled"
LIVE = (WAITING, ACTIVE)
MANAGERS = frozenset({Role.account_manager, Role.admin})
DEFAULT_HANDLING_S = 300
"""Expected length of a session before any has been measured (5 minutes)."""
NODE = f"{socket.gethostname()}:{os.getpid()}"
_JOIN_LOCK = 0x5649_4403
"""PostgreSQL advisory lock serialising joins: one live session per customer, and the capacity."""


class SessionExists(Conflict):
    code = "session_exists"


class KycDocumentMissing(Conflict):
    code = "kyc_document_missing"


class VideoBusy(AppError):
    status_code = 503
    code = "video_busy"
    retry_after_s: ClassVar[int] = 30


class NotActive(Conflict):
    code = "not_active"


class AlreadyAccepted(Conflict):
    code = "already_accepted"


class ChecklistIncomplete(Invalid):
    code = "checklist_incomplete"


class FaceNotMatched(Conflict):
    code = "face_not_matched"


class LivenessNotPassed(Conflict):
    code = "liveness_not_passed"


def now() -> datetime:
    return datetime.now(UTC)


# --- joining and the queue ----------------------------------------------------------------


async def _open_case_with_document(customer_id: int) -> KycCase:
    await kyc_service.expire_cases(customer_id=customer_id)
    case = (
        await KycCase.objects()
        .where(
            (KycCase.customer == customer_id)
            & KycCase.state.is_in([s.value for s in OPEN])
            & KycCase.document.is_not_null()
        )
        .order_by(KycCase.id, ascending=False)
        .first()
    )
    if case is None:
        raise KycDocumentMissing("start identity proofing and submit your identity document before the video session")
    return case


async def start_session(customer_id: int, data: SessionCreate) -> VideoSession:
    """Join the walk-in queue (or check in for a booked appointment)."""
    if isinstance(engine(), PostgresEngine):  # SQLite's write transactions are serial already (IMMEDIATE)
        await engine().run_ddl(f"SELECT pg_advisory_xact_lock({_JOIN_LOCK})")
    existing = (
        await VideoSession.select(VideoSession.id)
        .where((VideoSession.customer == customer_id) & VideoSession.state.is_in(list(LIVE)))
        .first()
    )
    if existing is not None:
        raise SessionExists(f"you already have a live session ({existing['id']})")
    case = await _open_case_with_document(customer_id)
    if await kyc_service.active_consent(customer_id) is None:  # withdrawn: the call's video is analysed
        raise ConsentRequired("consent to face processing is needed before the video session")
    live = await VideoSession.count().where(VideoSession.state.is_in(list(LIVE)))
    if live >= get_settings().video_max_sessions:
        raise VideoBusy("all account managers are busy: please retry in a few minutes")
    at = now()
    appointment = None
    if data.appointment_id is not None:
        appointment = await appointments.due_appointment(customer_id, at)
        if appointment is None or appointment.id != data.appointment_id:
            raise Invalid(
                "no appointment of yours is due: check in from 10 minutes before it starts until it ends",
                code="appointment_not_due",
                fields=[FieldError("$.appointmentId", "not due")],
            )
    session = VideoSession(
        case=case.id,
        customer=customer_id,
        manager=appointment.manager if appointment else None,
        appointment=appointment.id if appointment else None,
        purpose=data.purpose,
        state=WAITING,
        recording_consent_at=at,
        queued_at=at,
        updated_at=at,
    )
    await session.save()
    await audit.record(
        "video.session_queued",
        "video_session",
        session.id,
        after={"case": case.id, "purpose": data.purpose, "appointment": session.appointment, "recording_consent": True},
    )
    return session


async def visible_session(principal: Principal, session_id: int) -> VideoSession:
    """The session if ``principal`` may see it: its customer, or a manager (404 otherwise)."""
    session = await VideoSession.objects().where(VideoSession.id == session_id).first()
    if session is None:
        raise NotFound("no such video session")
    if principal.role == Role.customer and principal.customer_id == session.customer:
        return session
    if principal.role in MANAGERS:
        return session
    raise NotFound("no such video session")


async def _handling_seconds() -> float:
    """Median length of sessions decided in the last week (the basis of expected waits)."""
    since = now() - timedelta(days=7)
    rows = (
        await VideoSession.select(VideoSession.accepted_at, VideoSession.ended_at)
        .where((VideoSession.state == ENDED) & (VideoSession.ended_at > since) & VideoSession.accepted_at.is_not_null())
        .order_by(VideoSession.ended_at, ascending=False)
        .limit(200)
    )
    lengths = [(r["ended_at"] - r["accepted_at"]).total_seconds() for r in rows if r["ended_at"] and r["accepted_at"]]
    return statistics.median(lengths) if lengths else float(DEFAULT_HANDLING_S)


async def _waiting() -> list[dict[str, Any]]:
    """Waiting sessions in serving order: appointments first (by slot), then walk-ins by arrival."""
    rows = await VideoSession.select(
        VideoSession.id,
        VideoSession.customer,
        VideoSession.purpose,
        VideoSession.queued_at,
        VideoSession.appointment.starts_at.as_alias("appointment_at"),
        VideoSession.case.state.as_alias("case_state"),
        VideoSession.customer.full_name.as_alias("full_name"),
    ).where(VideoSession.state == WAITING)
    far = datetime.max.replace(tzinfo=UTC)
    return sorted(rows, key=lambda r: (r["appointment_at"] or far, r["queued_at"], r["id"]))


async def queue_estimate(session: VideoSession) -> tuple[int | None, int | None]:
    """(position from 1, expected wait in seconds) of a waiting session; (None, None) otherwise."""
    if session.state != WAITING:
        return None, None
    waiting = await _waiting()
    ids = [r["id"] for r in waiting]
    if session.id not in ids:
        return None, None
    position = ids.index(session.id) + 1
    managers = await VideoSession.select(VideoSession.manager).where(VideoSession.state == ACTIVE).distinct()
    serving = max(1, len(managers))
    wait = round((position - 1) * await _handling_seconds() / serving)
    return position, wait


async def queue() -> list[QueueEntry]:
    at = now()
    return [
        QueueEntry(
            session_id=r["id"],
            customer_name=_masked_name(r["full_name"]),
            purpose=r["purpose"],
            waited_s=int((at - r["queued_at"]).total_seconds()),
            appointment_at=r["appointment_at"],
            case_state=r["case_state"],
            summary=_summary(r),
        )
        for r in await _waiting()
    ]


def _masked_name(full_name: str | None) -> str:
    masked = appointments.mask_name(full_name) or "—"
    return masked + "*" if masked == full_name else masked  # a one-character name is never shown whole


def _summary(row: dict[str, Any]) -> str:
    purposes = {
        "loan": "Loan application 贷款申请",
        "claim": "Insurance claim 理赔",
        "identity": "Identity check 身份核验",
    }
    state = {"pending": "face not yet checked", "face_matched": "face matched", "flagged": "flagged for review"}
    return f"{purposes.get(row['purpose'], row['purpose'])}; KYC: {state.get(row['case_state'], row['case_state'])}"


# --- the manager's side -----------------------------------------------------------------------


async def accept(principal: Principal, session_id: int) -> VideoSession:
    """Take a waiting customer. Exactly one manager wins when two click at once."""
    session = await visible_session(principal, session_id)
    if session.state != WAITING:
        raise (
            AlreadyAccepted("this customer is no longer waiting")
            if session.state == ACTIVE
            else NotActive(f"the session is {session.state}")
        )
    if session.manager is not None and session.manager != principal.account_id:
        raise AlreadyAccepted("this appointment belongs to another account manager")
    at = now()
    taken = (
        await VideoSession.update(
            {
                VideoSession.state: ACTIVE,
                VideoSession.manager: principal.account_id,
                VideoSession.accepted_at: at,
                VideoSession.updated_at: at,
                VideoSession.node: NODE,
            }
        )
        .where((VideoSession.id == session_id) & (VideoSession.state == WAITING))
        .returning(VideoSession.id)
    )
    if not taken:
        raise AlreadyAccepted("another account manager accepted this customer first")
    await audit.record("video.session_accepted", "video_session", session_id, after={"manager": principal.account_id})
    return await _reload(session_id)


async def attach_room(session_id: int, room: RoomCredentials) -> None:
    await VideoSession.update(
        {
            VideoSession.room_id: room.room_id,
            VideoSession.room_secret_enc: seal(room.secret, VideoSession, "room_secret_enc") or "",
            VideoSession.room_pin_enc: seal(room.pin, VideoSession, "room_pin_enc") or "",
            VideoSession.rec_dir: room.rec_dir,
            VideoSession.updated_at: now(),
        }
    ).where(VideoSession.id == session_id)


def room_of(session: VideoSession) -> RoomCredentials | None:
    if session.room_id is None:
        return None
    return RoomCredentials(
        room_id=int(session.room_id),
        secret=unseal(session.room_secret_enc, VideoSession, "room_secret_enc") or "",
        pin=unseal(session.room_pin_enc, VideoSession, "room_pin_enc") or "",
        rec_dir=session.rec_dir,
    )


def _require_manager_of(principal: Principal, session: VideoSession) -> None:
    if session.state != ACTIVE:
        raise NotActive(f"the session is {session.state}")
    if session.manager != principal.account_id:
        raise NotFound("no such video session")  # another manager's call is not theirs to touch


async def set_checklist(principal: Principal, session: VideoSession, checklist: Checklist) -> VideoSession:
    _require_manager_of(principal, session)
    before = json_value(session.checklist)
    after = {item: getattr(checklist, item) for item in CHECKLIST_ITEMS}
    session.checklist = after
    session.updated_at = now()
    await session.save([VideoSession.checklist, VideoSession.updated_at])
    await audit.record("video.checklist", "video_session", session.id, before=before, after=after)
    return session


async def set_liveness(session_id: int, liveness: dict[str, Any]) -> None:
    await VideoSession.update({VideoSession.liveness: liveness, VideoSession.updated_at: now()}).where(
        VideoSession.id == session_id
    )


async def set_analysis(session_id: int, analysis: dict[str, Any]) -> None:
    await VideoSession.update({VideoSession.analysis: analysis}).where(VideoSession.id == session_id)


async def decide(principal: Principal, session: VideoSession, data: DecisionIn) -> VideoSession:
    """Approve or reject: completes the KYC case review and ends the session."""
    _require_manager_of(principal, session)
    case = await KycCase.objects().where(KycCase.id == session.case).first()
    if case is None:
        raise NotFound("the session's KYC case is gone")
    if data.decision == "approve":
        checklist = json_value(session.checklist)
        missing = [item for item in CHECKLIST_ITEMS if not checklist.get(item)]
        if missing:
            raise ChecklistIncomplete(
                "confirm every checklist item before approving",
                fields=[FieldError(f"$.checklist.{_camel(item)}", "not confirmed") for item in missing],
            )
        if case.state not in (CaseState.face_matched.value, CaseState.live.value, CaseState.flagged.value):
            raise FaceNotMatched(f"the customer's face has not been matched to the identity portrait ({case.state})")
        liveness = json_value(session.liveness)
        if case.state == CaseState.face_matched.value and liveness.get("phase") not in ("passed", "incomplete"):
            raise LivenessNotPassed(
                "run the liveness check: it must pass, or find no replayed photo or screen "
                f"(last result: {liveness.get('phase', 'not run')})"
            )
    await kyc_service.attended_review(principal, case, data.decision, data.reason)
    session.decision = data.decision
    session.decision_reason = data.reason
    await session.save([VideoSession.decision, VideoSession.decision_reason])
    await audit.record(
        "video.decision",
        "video_session",
        session.id,
        after={"decision": data.decision, "reason": data.reason, "case": case.id, "case_state": case.state},
    )
    return await end(session.id, "decided")


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p.title() for p in rest)


async def end(session_id: int, reason: str) -> VideoSession:
    """End an active session (recording conversion becomes due) or cancel a waiting one."""
    session = await _reload(session_id)
    if session.state not in LIVE:
        return session
    at = now()
    was_active = session.state == ACTIVE
    session.state = ENDED if was_active else CANCELLED
    session.ended_at = at
    session.end_reason = reason
    session.updated_at = at
    if was_active and session.room_id is not None:
        session.recording_state = "pending"
    await session.save()
    if session.appointment is not None and was_active:
        await appointments.complete_appointment(session.appointment)
    await audit.record(
        "video.session_ended", "video_session", session.id, after={"state": session.state, "reason": reason}
    )
    return session


async def _reload(session_id: int) -> VideoSession:
    session = await VideoSession.objects().where(VideoSession.id == session_id).first()
    if session is None:
        raise NotFound("no such video session")
    return session


async def expire_waiting() -> int:
    """Waiting sessions older than the queue timeout are cancelled (the customer went away)."""
    cutoff = now() - timedelta(minutes=get_settings().video_queue_timeout_minutes)
    rows = await VideoSession.select(VideoSession.id).where(
        (VideoSession.state == WAITING) & (VideoSession.queued_at < cutoff)
    )
    for row in rows:
        await end(row["id"], "timeout")
    return len(rows)


async def session_out(session: VideoSession) -> SessionOut:
    position, wait = await queue_estimate(session)
    case = await KycCase.select(KycCase.state).where(KycCase.id == session.case).first()
    appointment_at = None
    if session.appointment is not None:
        slot = (
            await AppointmentSlot.select(AppointmentSlot.starts_at)
            .where(AppointmentSlot.id == session.appointment)
            .first()
        )
        appointment_at = slot["starts_at"] if slot else None
    checklist = json_value(session.checklist)
    return SessionOut(
        id=session.id,
        case_id=session.case,
        customer_id=session.customer,
        manager_id=session.manager,
        purpose=session.purpose,
        state=session.state,
        queue_position=position,
        expected_wait_s=wait,
        queued_at=session.queued_at,
        accepted_at=session.accepted_at,
        ended_at=session.ended_at,
        end_reason=session.end_reason,
        checklist=Checklist(**{item: bool(checklist.get(item)) for item in CHECKLIST_ITEMS}),
        decision=session.decision,
        decision_reason=session.decision_reason,
        liveness=json_value(session.liveness),
        analysis=json_value(session.analysis),
        recording_state=session.recording_state,
        case_state=case["state"] if case else "",
        appointment_at=appointment_at,
    )


async def customer_name(customer_id: int) -> str:
    row = await Customer.select(Customer.full_name).where(Customer.id == customer_id).first()
    return _masked_name(row["full_name"] if row else None)


# --- evidence stills ------------------------------------------------------------------------------


async def store_still(session_id: int, case_id: int, jpeg: bytes, distance: float | None) -> StillOut:
    """The manager's capture: the customer's latest frame, kept as evidence of the KYC case."""
    stored = blob_store().put("still", jpeg)
    at = now()
    retention = at + timedelta(days=get_settings().kyc_retention_days)
    evidence = KycEvidence(
        case=case_id,
        kind="still",
        blob_id=stored.blob_id,
        sha256=stored.sha256,
        captured_at=at,
        distance=distance,
        detail={"session": session_id, "erase_after": retention.isoformat()},
    )
    await evidence.save()
    await audit.record(
        "video.still_captured", "kyc_evidence", evidence.id, after={"session": session_id, "sha256": stored.sha256}
    )
    return StillOut(id=evidence.id, captured_at=at, distance=distance)


async def stills(session: VideoSession) -> list[StillOut]:
    rows = await KycEvidence.select(KycEvidence.id, KycEvidence.captured_at, KycEvidence.distance).where(
        (KycEvidence.case == session.case) & (KycEvidence.kind == "still") & KycEvidence.erased_at.is_null()
    )
    return [StillOut(id=r["id"], captured_at=r["captured_at"], distance=r["distance"]) for r in rows]
