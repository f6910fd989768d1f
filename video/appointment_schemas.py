"""Structs of appointments (预约办) that cross the HTTP boundary.

Kept apart from the live-session schemas so the two halves of video/ can grow
without editing one file at once; merge into ``video/schemas.py`` when convenient.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from msgspec import Meta

from app.schemas import Base

Purpose = Literal["loan", "claim", "identity"]
ClockTime = Annotated[str, Meta(pattern=r"^([01]\d|2[0-3]):[0-5]\d$", description="HH:MM, 24-hour clock")]
SlotMinutes = Annotated[int, Meta(ge=10, le=120)]


def parse_clock(value: str) -> dt.time:
    hours, minutes = value.split(":")
    return dt.time(int(hours), int(minutes))


class SlotsCreate(Base):
    """A manager publishes one day's availability: ``start`` to ``end`` cut into
    ``minutes``-long slots, local times in ``timeZone``."""

    date: dt.date
    start: ClockTime = "09:00"
    end: ClockTime = "17:00"
    minutes: SlotMinutes = 20
    time_zone: Annotated[str, Meta(min_length=1, max_length=64)] = "Asia/Shanghai"

    def __post_init__(self) -> None:
        if parse_clock(self.end) <= parse_clock(self.start):
            raise ValueError("end: must be after start")
        try:
            ZoneInfo(self.time_zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("timeZone: not a known IANA time zone") from None


class BookingCreate(Base):
    purpose: Purpose


class SlotOut(Base):
    """A bookable slot as customers see it: the manager by display name only."""

    id: int
    manager_name: str
    starts_at: dt.datetime
    ends_at: dt.datetime
    minutes: int
    state: str


class AppointmentOut(Base):
    """A customer's own booking."""

    id: int
    manager_name: str
    starts_at: dt.datetime
    ends_at: dt.datetime
    minutes: int
    state: str
    purpose: str
    booked_at: dt.datetime | None
    cancellable: bool


class DaySlotOut(Base):
    """One slot of a manager's day; the customer's name is masked."""

    id: int
    starts_at: dt.datetime
    ends_at: dt.datetime
    minutes: int
    state: str
    customer_name: str | None
    purpose: str | None
    booked_at: dt.datetime | None


class ManagerDayOut(Base):
    date: dt.date
    time_zone: str
    slots: list[DaySlotOut]
