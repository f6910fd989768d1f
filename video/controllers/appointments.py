"""HTTP surface of appointments (预约办): slots, bookings, a manager's day."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from litestar import Controller, delete, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED

from app.jobs import JobRunner
from app.notifications import JOB as NOTIFY_JOB
from app.notifications import pending as pending_notifications
from app.security import Principal, Role, requires_role
from video import appointments
from video.appointment_schemas import (
    AppointmentOut,
    BookingCreate,
    DaySlotOut,
    ManagerDayOut,
    SlotOut,
    SlotsCreate,
    parse_clock,
)

_customer = requires_role(Role.customer)
_manager = requires_role(Role.account_manager)
_slot_owners = requires_role(Role.account_manager, Role.admin)
DateQuery = Annotated[dt.date | None, QueryParameter(description="YYYY-MM-DD, a day in Asia/Shanghai")]


class SlotController(Controller):
    path = "/api/video/slots"
    tags = ["video: appointments"]

    @post("/", operation_id="open_video_slots", guards=[_manager], status_code=HTTP_201_CREATED)
    async def open_slots(self, data: JSONBody[SlotsCreate], principal: NamedDependency[Principal]) -> list[SlotOut]:
        """Publish the caller's availability for a day. Slots already there at the same
        times are kept (publishing twice is harmless); any other overlap is refused (409)."""
        slots = await appointments.open_slots(
            principal.account_id,
            data.date,
            start=parse_clock(data.start),
            end=parse_clock(data.end),
            minutes=data.minutes,
            tz=data.time_zone,
        )
        return await appointments.slots_out(slots)

    @get("/", operation_id="list_open_video_slots", guards=[_customer])
    async def list_open(self, date: DateQuery = None) -> list[SlotOut]:
        """Open slots that have not begun, soonest first; one local day with ``date``."""
        return await appointments.open_slots_for_customers(date)

    @post("/{slot_id:int}/booking", operation_id="book_video_slot", guards=[_customer], status_code=HTTP_201_CREATED)
    async def book(
        self, slot_id: FromPath[int], data: JSONBody[BookingCreate], principal: NamedDependency[Principal]
    ) -> AppointmentOut:
        """Book an open slot. Exactly one of two simultaneous bookings wins (the other: 409
        ``slot_unavailable``); a customer holds one upcoming booking at a time (409 ``booking_exists``)."""
        assert principal.customer_id is not None
        return await appointments.book(principal.customer_id, slot_id, data.purpose)

    @delete("/{slot_id:int}/booking", operation_id="cancel_video_booking", guards=[_customer], status_code=HTTP_200_OK)
    async def cancel_booking(self, slot_id: FromPath[int], principal: NamedDependency[Principal]) -> SlotOut:
        """Give the slot back until it starts; it is open again. Another customer's booking answers 404."""
        assert principal.customer_id is not None
        return await appointments.cancel_booking(principal.customer_id, slot_id)

    @delete("/{slot_id:int}", operation_id="cancel_video_slot", guards=[_slot_owners], status_code=HTTP_200_OK)
    async def cancel_slot(
        self, slot_id: FromPath[int], principal: NamedDependency[Principal], jobs: NamedDependency[JobRunner]
    ) -> DaySlotOut:
        """Withdraw a slot (its manager, or an admin); a booked customer is notified. Idempotent."""
        out = await appointments.cancel_slot(principal, slot_id)
        # the message is in the outbox (committed with the change); deliver it now rather
        # than at the next sweep - delivery is idempotent, so enqueueing twice is harmless
        for payload in await pending_notifications():
            await jobs.enqueue(NOTIFY_JOB, payload)
        return out


class AppointmentController(Controller):
    path = "/api/video"
    tags = ["video: appointments"]

    @get("/appointments", operation_id="list_my_video_appointments", guards=[_customer])
    async def mine(self, principal: NamedDependency[Principal]) -> list[AppointmentOut]:
        """The caller's booked appointments that have not ended."""
        assert principal.customer_id is not None
        return await appointments.upcoming_appointments(principal.customer_id)

    @get("/day", operation_id="get_my_video_day", guards=[_manager])
    async def day(self, principal: NamedDependency[Principal], date: DateQuery = None) -> ManagerDayOut:
        """The caller's slots of one local day (today by default), customers' names masked."""
        return await appointments.manager_day(principal.account_id, date or appointments.local_today())


CONTROLLERS = [SlotController, AppointmentController]
