"""Structs of video/ that cross the HTTP and WebSocket boundary (see docs/video-sessions.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from msgspec import Meta

from app.schemas import Base

Purpose = Literal["loan", "claim", "identity"]
CHECKLIST_ITEMS = ("identity_confirmed", "purpose_confirmed", "willingness_confirmed", "terms_understood")


class SessionCreate(Base):
    purpose: Purpose
    recording_consent: bool = False
    appointment_id: int | None = None

    def __post_init__(self) -> None:
        if not self.recording_consent:
            raise ValueError("recordingConsent: the session is recorded; consent is needed to join")


class Checklist(Base):
    """What the manager confirms during the call (all four before approving)."""

    identity_confirmed: bool = False
    purpose_confirmed: bool = False
    willingness_confirmed: bool = False
    terms_understood: bool = False


class DecisionIn(Base):
    decision: Literal["approve", "reject"]
    reason: Annotated[str, Meta(min_length=1, max_length=500)]


class SessionOut(Base):
    id: int
    case_id: int
    customer_id: int
    manager_id: int | None
    purpose: str
    state: str
    queue_position: int | None
    expected_wait_s: int | None
    queued_at: datetime
    accepted_at: datetime | None
    ended_at: datetime | None
    end_reason: str
    checklist: Checklist
    decision: str
    decision_reason: str
    liveness: dict[str, Any]
    analysis: dict[str, Any]
    recording_state: str
    case_state: str
    appointment_at: datetime | None = None


class QueueEntry(Base):
    session_id: int
    customer_name: str
    purpose: str
    waited_s: int
    appointment_at: datetime | None
    case_state: str
    summary: str


class StillOut(Base):
    id: int
    captured_at: datetime
    distance: float | None


class RecordingOut(Base):
    id: int
    participant: str
    duration_s: float
    sha256: str
    size_bytes: int
    video_codec: str
    audio_codec: str
    erase_after: datetime
    erased: bool
