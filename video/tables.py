"""Tables of video/: live sessions, their recordings, and appointment slots (预约办)."""

from __future__ import annotations

from piccolo.columns import JSON, BigInt, Float, ForeignKey, Integer, Serial, Text, Timestamptz, Varchar
from piccolo.table import Table

from app.tables import Account, Customer
from kyc.tables import KycCase


class AppointmentSlot(Table, tablename="video_appointment_slot"):
    """A manager's bookable time; ``customer`` is set once booked (one booking per slot)."""

    id = Serial(primary_key=True)
    manager = ForeignKey(references=Account, index=True)
    starts_at = Timestamptz(index=True)
    minutes = Integer(default=20)
    state = Varchar(length=16, default="open", index=True)
    """open → booked → done; booked → open when the customer cancels; cancelled by the manager."""
    customer = ForeignKey(references=Customer, null=True, default=None, index=True)
    purpose = Varchar(length=16, default="")
    booked_at = Timestamptz(null=True, default=None)
    created_at = Timestamptz()


class VideoSession(Table, tablename="video_session"):
    """One live session of a customer with an account manager, bound to a KYC case.

    ``state``: waiting (in the queue) → active (a manager accepted, room open) → ended;
    waiting → cancelled (the customer left or timed out before being served). The room's
    secret and PIN are sealed (only the server ever uses them)."""

    id = Serial(primary_key=True)
    case = ForeignKey(references=KycCase, index=True)
    customer = ForeignKey(references=Customer, index=True)
    manager = ForeignKey(references=Account, null=True, default=None, index=True)
    appointment = ForeignKey(references=AppointmentSlot, null=True, default=None)
    purpose = Varchar(length=16)
    """loan, claim or identity: what the customer came for (shown in the manager's queue)."""
    state = Varchar(length=16, index=True)
    room_id = BigInt(null=True, default=None)
    room_secret_enc = Text(default="")
    room_pin_enc = Text(default="")
    rec_dir = Text(default="")
    node = Varchar(length=64, default="")
    """The app process holding the session's live state (sessions are pinned to one)."""
    recording_consent_at = Timestamptz()
    queued_at = Timestamptz(index=True)
    accepted_at = Timestamptz(null=True, default=None)
    ended_at = Timestamptz(null=True, default=None)
    end_reason = Varchar(length=32, default="")
    checklist = JSON(default="{}")
    decision = Varchar(length=16, default="")
    decision_reason = Text(default="")
    liveness = JSON(default="{}")
    """The last liveness check: challenges drawn, started_at, outcome."""
    analysis = JSON(default="{}")
    """Live face-match figures: last distance, threshold, frames analysed, first verdict time."""
    recording_state = Varchar(length=16, default="none")
    """none → pending (session ended, conversion queued) → stored | failed."""
    updated_at = Timestamptz()


class SessionRecording(Table, tablename="video_recording"):
    """One participant's converted recording (WebM) in the encrypted blob store."""

    id = Serial(primary_key=True)
    session = ForeignKey(references=VideoSession, index=True)
    participant = Varchar(length=16)
    """customer or manager."""
    blob_id = Varchar(length=64, null=True, default=None)
    sha256 = Varchar(length=64)
    size_bytes = BigInt()
    duration_s = Float()
    video_codec = Varchar(length=16, default="")
    audio_codec = Varchar(length=16, default="")
    created_at = Timestamptz()
    erase_after = Timestamptz(index=True)
    erased_at = Timestamptz(null=True, default=None)
