"""Structs of kyc/ that cross the HTTP boundary."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from msgspec import Meta

from app.schemas import Base

DocumentKind = Literal["prc_resident_id", "passport"]


class ConsentCreate(Base):
    text_version: Annotated[str, Meta(min_length=1, max_length=32)] = "face-2026-01"
    agree: bool = False

    def __post_init__(self) -> None:
        if not self.agree:
            raise ValueError("agree: consent to face processing must be given explicitly")


class ConsentOut(Base):
    customer_id: int
    text_version: str
    granted_at: datetime
    withdrawn_at: datetime | None


class Challenge(Base):
    """Show the prompt from ``start`` to ``end`` seconds after the first frame is captured."""

    kind: Literal["blink", "turn_left", "turn_right"]
    start: float
    end: float


class ChallengeResult(Base):
    kind: str
    passed: bool
    detail: str = ""


class CaseOut(Base):
    id: int
    customer_id: int
    state: str
    has_document: bool
    challenges: list[Challenge]
    challenge_results: list[ChallengeResult]
    best_distance: float | None
    threshold: float | None
    frames_matched: int
    live: bool | None
    liveness_reason: str
    flag_reason: str
    review_reason: str
    created_at: datetime
    expires_at: datetime
    verified_until: datetime | None


class ReviewCreate(Base):
    decision: Literal["approve", "reject"]
    reason: Annotated[str, Meta(min_length=3, max_length=2000)]


class Verdict(Base):
    """What loans and claims ask: is this customer's identity proven, and by what."""

    customer_id: int
    verified: bool
    case_id: int | None = None
    verified_until: datetime | None = None
    best_distance: float | None = None
