"""Appointments at the service level: publishing, booking, cancelling, the manager's day, check-in windows."""

from __future__ import annotations

import asyncio
import datetime as dt
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.helpers import Person, make_customer, make_staff
from tests.integration.video_appointments.conftest import future_day, insert_slot, publish


async def _audit(action: str, slot_id: int) -> int:
    from app.tables import AuditEntry

    return int(await AuditEntry.count().where((AuditEntry.action == action) & (AuditEntry.entity_id == str(slot_id))))


def _principal(person: Person, role: str) -> Any:
    from app.security import Principal, Role, TokenKind

    return Principal(person.account_id, Role(role), person.email, "x", person.customer_id, 0, TokenKind.api)


async def test_open_slots_cuts_the_day_in_shanghai_time_and_is_idempotent(manager: Person) -> None:
    from video import appointments
    from video.tables import AppointmentSlot

    day = future_day()
    first = await publish(manager, day, "09:00", "10:10", 20)
    assert len(first) == 3  # 09:00, 09:20, 09:40 - 10:00-10:20 does not fit before 10:10
    rows = await AppointmentSlot.select().where(AppointmentSlot.id.is_in(first)).order_by(AppointmentSlot.starts_at)
    local = [appointments.utc(r["starts_at"]).astimezone(appointments.LOCAL_ZONE) for r in rows]
    assert [t.strftime("%Y-%m-%d %H:%M") for t in local] == [f"{day} 09:00", f"{day} 09:20", f"{day} 09:40"]
    assert appointments.utc(rows[0]["starts_at"]).hour == 1  # stored in UTC (Shanghai is UTC+8)
    assert all(r["state"] == "open" for r in rows)
    assert await _audit("video.slot_opened", first[0]) == 1

    again = await publish(manager, day, "09:00", "10:40", 20)
    assert again[:3] == first  # kept, not duplicated
    assert len(again) == 5
    assert await AppointmentSlot.count().where(AppointmentSlot.manager == manager.account_id) == 5


async def test_overlapping_slots_are_refused_with_the_clashing_times(manager: Person) -> None:
    from app.errors import Conflict
    from video import appointments
    from video.tables import AppointmentSlot

    day = future_day()
    await publish(manager, day, "10:00", "11:00", 20)
    with pytest.raises(appointments.SlotOverlap) as caught:
        await publish(manager, day, "10:30", "11:30", 30)
    assert isinstance(caught.value, Conflict)
    assert "10:20-10:40" in caught.value.message
    assert caught.value.fields[0].path == "$.start"
    # nothing of the refused request was written
    assert await AppointmentSlot.count().where(AppointmentSlot.manager == manager.account_id) == 3
    # another manager's slots never clash with mine
    other = await make_staff("account_manager")
    assert len(await publish(other, day, "10:30", "11:30", 30)) == 2


async def test_cancelled_slots_free_their_time(manager: Person) -> None:
    from video import appointments

    day = future_day()
    [slot] = await publish(manager, day, "14:00", "14:20", 20)
    await appointments.cancel_slot(_principal(manager, "account_manager"), slot)
    [again] = await publish(manager, day, "14:00", "14:20", 20)
    assert again != slot


@pytest.mark.parametrize(
    ("kwargs", "path"),
    [
        ({"start": "10:00", "end": "09:00"}, "$.end"),
        ({"start": "10:00", "end": "10:10"}, "$.end"),
        ({"minutes": 5}, "$.minutes"),
        ({"start": "9am"}, "$.start"),
        ({"tz": "Mars/Olympus"}, "$.timeZone"),
    ],
)
async def test_bad_publications_name_the_field(manager: Person, kwargs: dict[str, Any], path: str) -> None:
    from app.errors import Invalid
    from video import appointments

    with pytest.raises(Invalid) as caught:
        await appointments.open_slots(manager.account_id, future_day(), **kwargs)
    assert caught.value.fields[0].path == path


async def test_past_days_and_non_managers_cannot_publish(manager: Person, alice: Person) -> None:
    from app.errors import Forbidden, Invalid
    from video import appointments

    with pytest.raises(Invalid) as caught:
        await appointments.open_slots(manager.account_id, appointments.local_today() - timedelta(days=1))
    assert caught.value.fields[0].path == "$.date"
    with pytest.raises(Forbidden):
        await appointments.open_slots(alice.account_id, future_day())


async def test_publishing_today_leaves_out_the_times_already_begun(manager: Person) -> None:
    from video import appointments

    at = datetime.combine(future_day(), dt.time(12, 5), tzinfo=appointments.LOCAL_ZONE)
    slots = await appointments.open_slots(
        manager.account_id, at.date(), start="11:00", end="13:00", minutes=30, at=at.astimezone(UTC)
    )
    starts = [appointments.utc(s.starts_at).astimezone(appointments.LOCAL_ZONE).strftime("%H:%M") for s in slots]
    assert starts == ["12:30"]


async def test_book_list_and_cancel_then_rebook(manager: Person, alice: Person) -> None:
    from video import appointments

    day = future_day()
    first, second, _ = await publish(manager, day)
    assert alice.customer_id is not None
    listed = {s.id: s for s in await appointments.open_slots_for_customers(day)}
    assert {first, second} <= listed.keys()
    assert listed[first].manager_name == "Staff account_manager"
    assert "@" not in repr(listed[first])  # no email, only the display name

    booked = await appointments.book(alice.customer_id, first, "loan")
    assert (booked.id, booked.state, booked.purpose, booked.cancellable) == (first, "booked", "loan", True)
    assert await _audit("video.appointment_booked", first) == 1
    assert first not in {s.id for s in await appointments.open_slots_for_customers(day)}
    assert [a.id for a in await appointments.upcoming_appointments(alice.customer_id)] == [first]

    freed = await appointments.cancel_booking(alice.customer_id, first)
    assert freed.state == "open"
    assert await _audit("video.appointment_cancelled", first) == 1
    assert first in {s.id for s in await appointments.open_slots_for_customers(day)}
    assert await appointments.upcoming_appointments(alice.customer_id) == []

    again = await appointments.book(alice.customer_id, second, "claim")
    assert (again.id, again.purpose) == (second, "claim")


async def test_a_customer_holds_one_upcoming_booking(manager: Person, alice: Person) -> None:
    from video import appointments

    assert alice.customer_id is not None
    first, second, _ = await publish(manager, future_day())
    await appointments.book(alice.customer_id, first, "loan")
    with pytest.raises(appointments.BookingExists):
        await appointments.book(alice.customer_id, second, "loan")


async def test_two_customers_booking_one_slot_at_once_exactly_one_wins(manager: Person, alice: Person) -> None:
    from video import appointments
    from video.tables import AppointmentSlot

    others = [alice, *[await make_customer(f"客户{i}") for i in range(4)]]
    [slot] = await publish(manager, future_day(), "15:00", "15:20")
    results = await asyncio.gather(
        *(appointments.book(p.customer_id or 0, slot, "identity") for p in others), return_exceptions=True
    )
    wins = [r for r in results if not isinstance(r, BaseException)]
    losses = [r for r in results if isinstance(r, BaseException)]
    assert len(wins) == 1, results
    assert all(isinstance(r, appointments.SlotUnavailable) for r in losses), losses
    row = await AppointmentSlot.select().where(AppointmentSlot.id == slot).first()
    assert row is not None
    assert row["state"] == "booked"
    assert row["customer"] in {p.customer_id for p in others}
    assert await _audit("video.appointment_booked", slot) == 1


async def test_one_customer_booking_two_slots_at_once_gets_one(manager: Person, alice: Person) -> None:
    from video import appointments

    a, b, c = await publish(manager, future_day())
    assert alice.customer_id is not None
    cid = alice.customer_id
    results = await asyncio.gather(*(appointments.book(cid, s, "loan") for s in (a, b, c)), return_exceptions=True)
    assert sum(not isinstance(r, BaseException) for r in results) == 1, results
    assert len(await appointments.upcoming_appointments(cid)) == 1


async def test_slots_that_have_begun_cannot_be_booked_or_cancelled(manager: Person, alice: Person) -> None:
    from video import appointments

    assert alice.customer_id is not None
    begun = await insert_slot(manager, datetime.now(UTC) - timedelta(minutes=5))
    assert begun not in {s.id for s in await appointments.open_slots_for_customers()}
    with pytest.raises(appointments.SlotStarted):
        await appointments.book(alice.customer_id, begun, "loan")

    running = await insert_slot(manager, datetime.now(UTC) - timedelta(minutes=5), customer=alice)
    with pytest.raises(appointments.SlotStarted):
        await appointments.cancel_booking(alice.customer_id, running)


async def test_nobody_cancels_another_customers_booking(manager: Person, alice: Person, bob: Person) -> None:
    from video import appointments

    assert alice.customer_id is not None
    assert bob.customer_id is not None
    [slot] = await publish(manager, future_day(), "16:00", "16:20")
    await appointments.book(alice.customer_id, slot, "loan")
    with pytest.raises(appointments.SlotNotFound):
        await appointments.cancel_booking(bob.customer_id, slot)
    with pytest.raises(appointments.SlotNotFound):
        await appointments.cancel_booking(alice.customer_id, 10**9)
    assert [a.id for a in await appointments.upcoming_appointments(alice.customer_id)] == [slot]


async def test_manager_cancelling_a_booked_slot_notifies_the_customer(manager: Person, alice: Person) -> None:
    from app.errors import Forbidden
    from app.tables import Notification
    from video import appointments

    assert alice.customer_id is not None
    day = future_day()
    open_one, booked = (await publish(manager, day, "08:00", "08:40"))[:2]
    await appointments.book(alice.customer_id, booked, "claim")
    other = await make_staff("account_manager")
    with pytest.raises(Forbidden):
        await appointments.cancel_slot(_principal(other, "account_manager"), booked)

    out = await appointments.cancel_slot(_principal(manager, "account_manager"), booked)
    assert (out.state, out.customer_name) == ("cancelled", "张*")
    notes = await Notification.select().where(Notification.account == alice.account_id)
    cancelled = [n for n in notes if "cancelled" in n["subject"]]
    assert len(cancelled) == 1
    assert "08:20" in cancelled[0]["body"]
    assert await appointments.upcoming_appointments(alice.customer_id) == []
    assert await _audit("video.slot_cancelled", booked) == 1

    again = await appointments.cancel_slot(_principal(manager, "account_manager"), booked)  # idempotent
    assert again.state == "cancelled"
    assert await _audit("video.slot_cancelled", booked) == 1
    admin = await make_staff("admin")
    assert (await appointments.cancel_slot(_principal(admin, "admin"), open_one)).state == "cancelled"
    assert open_one not in {s.id for s in await appointments.open_slots_for_customers(day)}


async def test_manager_day_masks_names_and_respects_shanghai_midnight(
    manager: Person, alice: Person, bob: Person
) -> None:
    from video import appointments

    assert alice.customer_id is not None
    assert bob.customer_id is not None
    day = future_day()
    early = await publish(manager, day, "00:00", "00:40")  # 16:00-16:40 UTC the day before
    late = await publish(manager, day, "23:20", "23:40")
    await appointments.book(alice.customer_id, early[1], "loan")
    await appointments.book(bob.customer_id, late[0], "identity")

    found = await appointments.manager_day(manager.account_id, day)
    assert [s.id for s in found.slots] == [*early, *late]
    by_id = {s.id: s for s in found.slots}
    assert (by_id[early[1]].customer_name, by_id[early[1]].purpose) == ("张*", "loan")
    assert (by_id[late[0]].customer_name, by_id[late[0]].purpose) == ("欧***", "identity")
    assert by_id[early[0]].customer_name is None
    assert (await appointments.manager_day(manager.account_id, day - timedelta(days=1))).slots == []
    assert (await appointments.manager_day(manager.account_id, day + timedelta(days=1))).slots == []
    other = await make_staff("account_manager")
    assert (await appointments.manager_day(other.account_id, day)).slots == []


async def test_due_appointment_window_runs_from_ten_minutes_before_to_the_end(manager: Person, alice: Person) -> None:
    from video import appointments

    assert alice.customer_id is not None
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=2)
    slot = await insert_slot(manager, start, minutes=20, customer=alice)
    due = appointments.due_appointment
    assert await due(alice.customer_id, start - timedelta(minutes=11)) is None
    found = await due(alice.customer_id, start - timedelta(minutes=10))
    assert found is not None
    assert found.id == slot
    assert (await due(alice.customer_id, start + timedelta(minutes=19, seconds=59))) is not None
    assert await due(alice.customer_id, start + timedelta(minutes=20)) is None
    assert await due((await make_customer()).customer_id or 0, start) is None

    assert await appointments.complete_appointment(slot)
    assert await due(alice.customer_id, start) is None  # done: no longer due
    assert not await appointments.complete_appointment(slot)


def test_mask_name() -> None:
    from video.appointments import mask_name

    assert mask_name("张伟") == "张*"
    assert mask_name("Alice Smith") == "A**** *****"
    assert mask_name("") == ""
    assert mask_name(None) is None
