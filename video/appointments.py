"""Appointments (预约办): managers publish slots, customers book one, managers see their day.

A slot is ``open`` → ``booked`` (a customer holds it) → ``done`` (the session took
place); a customer's cancellation puts it back to ``open``; the manager may
``cancel`` it for good. Times are stored in UTC; a "day" is a calendar day in
Asia/Shanghai (or the zone the manager names when publishing).

Double booking is prevented by the database, not by a read-then-write: the booking
is one conditional ``UPDATE ... WHERE state = 'open'`` and only the caller whose
update touched the row wins. Each public writer opens its own transaction (nested
in the caller's one when there is one) and audits the change inside it.
"""

# ruff: noqa: RUF001  # Chinese text uses full-width punctuation on purpose

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from piccolo.engine.postgres import PostgresEngine

from app import audit
from app.db import engine, transaction
from app.errors import Conflict, FieldError, Forbidden, Invalid, NotFound
from app.security import Principal, Role
from app.tables import Account, Customer, Notification
from video.appointment_schemas import AppointmentOut, DaySlotOut, ManagerDayOut, SlotOut
from video.tables import AppointmentSlot

LOCAL_ZONE_NAME = "Asia/Shanghai"
LOCAL_ZONE = ZoneInfo(LOCAL_ZONE_NAME)
OPEN, BOOKED, DONE, CANCELLED = "open", "booked", "done", "cancelled"
PURPOSES = ("loan", "claim", "identity")
MIN_SLOT_MINUTES, MAX_SLOT_MINUTES = 10, 120
MAX_SLOTS_PER_DAY = 96
MAX_DAYS_AHEAD = 90
CHECK_IN_EARLY = timedelta(minutes=10)
"""A booked customer may check in this long before the slot starts."""

# Advisory-lock namespaces (PostgreSQL): one booker per customer, one publisher per manager.
_CUSTOMER_LOCK = 0x5649_4401
_MANAGER_LOCK = 0x5649_4402


class SlotNotFound(NotFound):
    code = "slot_not_found"


class SlotOverlap(Conflict):
    code = "slot_overlap"


class SlotUnavailable(Conflict):
    """Someone else booked it first, or its manager withdrew it."""

    code = "slot_unavailable"


class SlotStarted(Conflict):
    code = "slot_started"


class BookingExists(Conflict):
    code = "booking_exists"


class SlotFinished(Conflict):
    code = "slot_finished"


class NotYourSlot(Forbidden):
    code = "not_your_slot"


class NotAManager(Forbidden):
    code = "not_a_manager"


# --- time ------------------------------------------------------------------------


def now() -> datetime:
    return datetime.now(UTC)


def utc(value: datetime) -> datetime:
    """Stored instants come back aware (UTC) on both engines; be safe with naive ones."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise Invalid(f"unknown time zone {name!r}", fields=[FieldError("$.timeZone", "unknown time zone")]) from None


def local_today(at: datetime | None = None, tz: ZoneInfo = LOCAL_ZONE) -> dt.date:
    return (at or now()).astimezone(tz).date()


def day_bounds(day: dt.date, tz: ZoneInfo = LOCAL_ZONE) -> tuple[datetime, datetime]:
    """The UTC instants of the day's first moment and of the next day's."""
    start = datetime.combine(day, dt.time(0), tzinfo=tz).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), dt.time(0), tzinfo=tz).astimezone(UTC)
    return start, end


def local_label(at: datetime, tz: ZoneInfo = LOCAL_ZONE) -> str:
    return utc(at).astimezone(tz).strftime("%Y-%m-%d %H:%M")


def _clock(value: str | dt.time, path: str) -> dt.time:
    if isinstance(value, dt.time):
        return value
    try:
        hours, minutes = value.split(":")
        return dt.time(int(hours), int(minutes))
    except ValueError:
        raise Invalid(f"{path[2:]} must be HH:MM", fields=[FieldError(path, "expected HH:MM")]) from None


# --- personal data ---------------------------------------------------------------


def mask_name(name: str | None) -> str | None:
    """张伟 → 张*, 欧阳娜娜 → 欧***: the first character stays, the rest is starred.
    app/accounts.mask keeps the *last* digits of numbers; for names the family
    name (first character) is what staff recognise, the given name is what identifies."""
    if not name:
        return name
    return name[0] + "".join(" " if ch.isspace() else "*" for ch in name[1:])


async def _lock(namespace: int, key: int) -> None:
    """Serialise one customer's (or manager's) writers on PostgreSQL; SQLite's
    write transactions are already serial (IMMEDIATE)."""
    db = engine()
    if isinstance(db, PostgresEngine):
        await db.run_ddl(f"SELECT pg_advisory_xact_lock({int(namespace)}, {int(key)})")


# --- reading ---------------------------------------------------------------------

_COLUMNS = (
    AppointmentSlot.id,
    AppointmentSlot.manager,
    AppointmentSlot.manager.display_name,
    AppointmentSlot.starts_at,
    AppointmentSlot.minutes,
    AppointmentSlot.state,
    AppointmentSlot.customer,
    AppointmentSlot.customer.full_name,
    AppointmentSlot.purpose,
    AppointmentSlot.booked_at,
)


async def _rows(where: Any, limit: int = 500) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = (
        await AppointmentSlot.select(*_COLUMNS).where(where).order_by(AppointmentSlot.starts_at).limit(limit)
    )
    for row in rows:
        row["starts_at"] = utc(row["starts_at"])
        if row["booked_at"] is not None:
            row["booked_at"] = utc(row["booked_at"])
    return rows


def _ends(row: dict[str, Any]) -> datetime:
    return utc(row["starts_at"]) + timedelta(minutes=int(row["minutes"]))


def _slot_out(row: dict[str, Any]) -> SlotOut:
    return SlotOut(
        id=row["id"],
        manager_name=row["manager.display_name"],
        starts_at=row["starts_at"],
        ends_at=_ends(row),
        minutes=row["minutes"],
        state=row["state"],
    )


def _appointment_out(row: dict[str, Any], at: datetime) -> AppointmentOut:
    return AppointmentOut(
        id=row["id"],
        manager_name=row["manager.display_name"],
        starts_at=row["starts_at"],
        ends_at=_ends(row),
        minutes=row["minutes"],
        state=row["state"],
        purpose=row["purpose"],
        booked_at=row["booked_at"],
        cancellable=row["state"] == BOOKED and row["starts_at"] > at,
    )


def _day_slot_out(row: dict[str, Any]) -> DaySlotOut:
    booked = row["customer"] is not None
    return DaySlotOut(
        id=row["id"],
        starts_at=row["starts_at"],
        ends_at=_ends(row),
        minutes=row["minutes"],
        state=row["state"],
        customer_name=mask_name(row["customer.full_name"]) if booked else None,
        purpose=row["purpose"] if booked else None,
        booked_at=row["booked_at"] if booked else None,
    )


async def slot_view(slot_id: int) -> SlotOut:
    rows = await _rows(AppointmentSlot.id == slot_id, limit=1)
    if not rows:
        raise SlotNotFound("no such slot")
    return _slot_out(rows[0])


async def open_slots_for_customers(day: dt.date | None = None, *, at: datetime | None = None) -> list[SlotOut]:
    """Open slots that have not begun, of active managers, soonest first (one local day if given)."""
    at = at or now()
    where = (
        (AppointmentSlot.state == OPEN) & (AppointmentSlot.starts_at > at) & (AppointmentSlot.manager.is_active == True)  # noqa: E712  (a joined column: Piccolo's ``eq`` is untyped there)
    )
    if day is not None:
        start, end = day_bounds(day)
        where &= (AppointmentSlot.starts_at >= start) & (AppointmentSlot.starts_at < end)
    return [_slot_out(r) for r in await _rows(where)]


async def _upcoming_rows(customer_id: int, at: datetime) -> list[dict[str, Any]]:
    """The customer's booked slots that have not ended (at most one, by the booking rule)."""
    rows = await _rows(
        (AppointmentSlot.customer == customer_id)
        & (AppointmentSlot.state == BOOKED)
        & (AppointmentSlot.starts_at > at - timedelta(minutes=MAX_SLOT_MINUTES))
    )
    return [r for r in rows if _ends(r) > at]


async def upcoming_appointments(customer_id: int, *, at: datetime | None = None) -> list[AppointmentOut]:
    at = at or now()
    return [_appointment_out(r, at) for r in await _upcoming_rows(customer_id, at)]


async def manager_day(manager_id: int, day: dt.date) -> ManagerDayOut:
    """Every slot of the manager's local day, with the booked customers' names masked."""
    start, end = day_bounds(day)
    rows = await _rows(
        (AppointmentSlot.manager == manager_id)
        & (AppointmentSlot.starts_at >= start)
        & (AppointmentSlot.starts_at < end)
    )
    return ManagerDayOut(date=day, time_zone=LOCAL_ZONE_NAME, slots=[_day_slot_out(r) for r in rows])


async def due_appointment(customer_id: int, at: datetime) -> AppointmentSlot | None:
    """The customer's booked slot whose window (10 minutes before its start to its
    end) holds ``at``: what the session service binds a check-in to."""
    at = utc(at)
    candidates = (
        await AppointmentSlot.objects()
        .where(
            (AppointmentSlot.customer == customer_id)
            & (AppointmentSlot.state == BOOKED)
            & (AppointmentSlot.starts_at <= at + CHECK_IN_EARLY)
            & (AppointmentSlot.starts_at > at - timedelta(minutes=MAX_SLOT_MINUTES))
        )
        .order_by(AppointmentSlot.starts_at)
    )
    for slot in candidates:
        if utc(slot.starts_at) - CHECK_IN_EARLY <= at < utc(slot.starts_at) + timedelta(minutes=slot.minutes):
            return slot
    return None


# --- managers publish ------------------------------------------------------------


def _candidates(
    day: dt.date, start: dt.time, end: dt.time, minutes: int, tz: ZoneInfo
) -> list[tuple[datetime, datetime]]:
    """Back-to-back slots from ``start`` while a whole one fits before ``end`` (wall-clock times)."""
    out: list[tuple[datetime, datetime]] = []
    cursor = datetime.combine(day, start, tzinfo=tz)
    stop = datetime.combine(day, end, tzinfo=tz)
    step = timedelta(minutes=minutes)
    while cursor + step <= stop:
        out.append((cursor.astimezone(UTC), (cursor + step).astimezone(UTC)))
        cursor += step
    return out


def _overlaps(a: tuple[datetime, datetime], b: tuple[datetime, datetime]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def _wanted(
    day: dt.date, start: str | dt.time, end: str | dt.time, minutes: int, *, tz: ZoneInfo, at: datetime
) -> list[tuple[datetime, datetime]]:
    """The slots a publication asks for, or ``Invalid`` naming the field at fault."""
    start_t, end_t = _clock(start, "$.start"), _clock(end, "$.end")
    if not MIN_SLOT_MINUTES <= minutes <= MAX_SLOT_MINUTES:
        raise Invalid(
            f"a slot lasts {MIN_SLOT_MINUTES} to {MAX_SLOT_MINUTES} minutes",
            fields=[FieldError("$.minutes", "out of range")],
        )
    if end_t <= start_t:
        raise Invalid("end must be after start", fields=[FieldError("$.end", "must be after start")])
    today = local_today(at, tz)
    if day < today:
        raise Invalid("this day is over", fields=[FieldError("$.date", "in the past")])
    if day > today + timedelta(days=MAX_DAYS_AHEAD):
        raise Invalid(f"slots open at most {MAX_DAYS_AHEAD} days ahead", fields=[FieldError("$.date", "too far ahead")])
    wanted = _candidates(day, start_t, end_t, minutes, tz)
    if not wanted:
        raise Invalid("the range is shorter than one slot", fields=[FieldError("$.end", "shorter than one slot")])
    if len(wanted) > MAX_SLOTS_PER_DAY:
        raise Invalid(f"at most {MAX_SLOTS_PER_DAY} slots a day", fields=[FieldError("$.minutes", "too many slots")])
    wanted = [w for w in wanted if w[0] > at]
    if not wanted:
        raise Invalid("every slot of this range has already begun", fields=[FieldError("$.start", "in the past")])
    return wanted


async def open_slots(
    manager_id: int,
    day: dt.date,
    *,
    start: str | dt.time = "09:00",
    end: str | dt.time = "17:00",
    minutes: int = 20,
    tz: str = LOCAL_ZONE_NAME,
    at: datetime | None = None,
) -> list[AppointmentSlot]:
    """Publish a day's availability: ``start``..``end`` cut into ``minutes``-long slots.

    Idempotent: a slot already there at the same time and length is kept (and
    returned), so publishing the same day twice changes nothing. Any other
    overlap with the manager's slots (cancelled ones aside) refuses the whole
    request. Slots that would already have begun (publishing today) are left out.
    """
    at = at or now()
    zone_info = zone(tz)
    wanted = _wanted(day, start, end, minutes, tz=zone_info, at=at)

    async with transaction():
        manager = (
            await Account.select(Account.id)
            .where(
                (Account.id == manager_id) & (Account.role == Role.account_manager.value) & Account.is_active.eq(True)
            )
            .first()
        )
        if manager is None:
            raise NotAManager("only an active account manager publishes slots")
        await _lock(_MANAGER_LOCK, manager_id)
        existing = (
            await AppointmentSlot.objects()
            .where(
                (AppointmentSlot.manager == manager_id)
                & (AppointmentSlot.state != CANCELLED)
                & (AppointmentSlot.starts_at > wanted[0][0] - timedelta(minutes=MAX_SLOT_MINUTES))
                & (AppointmentSlot.starts_at < wanted[-1][1])
            )
            .order_by(AppointmentSlot.starts_at)
        )
        spans = [(s, (utc(s.starts_at), utc(s.starts_at) + timedelta(minutes=s.minutes))) for s in existing]
        kept: list[AppointmentSlot] = []
        new: list[tuple[datetime, datetime]] = []
        clashes: list[str] = []
        for span in wanted:
            same = next((s for s, other in spans if other == span), None)
            if same is not None:
                kept.append(same)
                continue
            hit = [other for _, other in spans if _overlaps(span, other)]
            if hit:
                clashes.extend(f"{local_label(o[0], zone_info)}-{o[1].astimezone(zone_info):%H:%M}" for o in hit)
            else:
                new.append(span)
        if clashes:
            unique = sorted(set(clashes))
            raise SlotOverlap(
                f"these times overlap slots you already have ({tz}): {', '.join(unique)}",
                fields=[FieldError("$.start", "overlaps existing slots")],
            )
        created: list[AppointmentSlot] = []
        stamp = now()
        for span in new:
            slot = AppointmentSlot(manager=manager_id, starts_at=span[0], minutes=minutes, state=OPEN, created_at=stamp)
            await slot.save()
            created.append(slot)
            await audit.record(
                "video.slot_opened",
                "appointment_slot",
                slot.id,
                after={"state": OPEN, "manager": manager_id, "starts_at": span[0].isoformat(), "minutes": minutes},
            )
    return sorted([*kept, *created], key=lambda s: utc(s.starts_at))


async def slots_out(slots: Iterable[AppointmentSlot]) -> list[SlotOut]:
    ids = [int(s.id) for s in slots]
    if not ids:
        return []
    return [_slot_out(r) for r in await _rows(AppointmentSlot.id.is_in(ids), limit=len(ids))]


# --- customers book --------------------------------------------------------------


async def book(customer_id: int, slot_id: int, purpose: str, *, at: datetime | None = None) -> AppointmentOut:
    """Book an open slot that has not begun; a customer holds at most one upcoming booking."""
    if purpose not in PURPOSES:
        raise Invalid(f"purpose must be one of {', '.join(PURPOSES)}", fields=[FieldError("$.purpose", "unknown")])
    at = at or now()
    async with transaction():
        await _lock(_CUSTOMER_LOCK, customer_id)
        held = await _upcoming_rows(customer_id, at)
        if held:
            raise BookingExists(
                f"you already have an appointment at {local_label(held[0]['starts_at'])}; cancel it to book another"
            )
        slot = (
            await AppointmentSlot.select(AppointmentSlot.id, AppointmentSlot.manager.is_active)
            .where(AppointmentSlot.id == slot_id)
            .first()
        )
        if slot is None or not slot["manager.is_active"]:
            raise SlotNotFound("no such slot")
        won = (
            await AppointmentSlot.update(
                {
                    AppointmentSlot.state: BOOKED,
                    AppointmentSlot.customer: customer_id,
                    AppointmentSlot.purpose: purpose,
                    AppointmentSlot.booked_at: at,
                }
            )
            .where((AppointmentSlot.id == slot_id) & (AppointmentSlot.state == OPEN) & (AppointmentSlot.starts_at > at))
            .returning(AppointmentSlot.id)
        )
        if not won:
            current = await AppointmentSlot.objects().where(AppointmentSlot.id == slot_id).first()
            if current is not None and current.state == OPEN:
                raise SlotStarted("this slot has already begun")
            raise SlotUnavailable("this slot is no longer available; please pick another")
        await audit.record(
            "video.appointment_booked",
            "appointment_slot",
            slot_id,
            before={"state": OPEN},
            after={"state": BOOKED, "customer": customer_id, "purpose": purpose},
        )
        rows = await _rows(AppointmentSlot.id == slot_id, limit=1)
    return _appointment_out(rows[0], at)


async def cancel_booking(customer_id: int, slot_id: int, *, at: datetime | None = None) -> SlotOut:
    """The booking customer gives the slot back (until it starts): it is open again."""
    at = at or now()
    async with transaction():
        freed = (
            await AppointmentSlot.update(
                {
                    AppointmentSlot.state: OPEN,
                    AppointmentSlot.customer: None,
                    AppointmentSlot.purpose: "",
                    AppointmentSlot.booked_at: None,
                }
            )
            .where(
                (AppointmentSlot.id == slot_id)
                & (AppointmentSlot.state == BOOKED)
                & (AppointmentSlot.customer == customer_id)
                & (AppointmentSlot.starts_at > at)
            )
            .returning(AppointmentSlot.id)
        )
        if not freed:
            current = await AppointmentSlot.objects().where(AppointmentSlot.id == slot_id).first()
            if current is None or current.customer != customer_id or current.state != BOOKED:
                # another customer's booking answers like a missing one
                raise SlotNotFound("you have no booking for this slot")
            raise SlotStarted("the appointment has begun; it can no longer be cancelled")
        await audit.record(
            "video.appointment_cancelled",
            "appointment_slot",
            slot_id,
            before={"state": BOOKED, "customer": customer_id},
            after={"state": OPEN},
        )
        return await slot_view(slot_id)


# --- managers withdraw, sessions complete ----------------------------------------


async def cancel_slot(actor: Principal, slot_id: int, *, at: datetime | None = None) -> DaySlotOut:
    """The owning manager (or an admin) withdraws a slot; a booked customer is told.

    Cancelling a cancelled slot changes nothing (idempotent). A slot whose session
    took place (``done``), or a booked one that is over, stays as it is."""
    at = at or now()
    async with transaction():
        for _ in range(3):
            slot = await AppointmentSlot.objects().where(AppointmentSlot.id == slot_id).first()
            if slot is None:
                raise SlotNotFound("no such slot")
            if actor.role != Role.admin and slot.manager != actor.account_id:
                raise NotYourSlot("this slot belongs to another manager")
            if slot.state == CANCELLED:
                return _day_slot_out((await _rows(AppointmentSlot.id == slot_id, limit=1))[0])
            if slot.state == DONE:
                raise SlotFinished("this appointment took place; it cannot be cancelled")
            starts = utc(slot.starts_at)
            if slot.state == BOOKED and starts + timedelta(minutes=slot.minutes) <= at:
                raise SlotFinished("this appointment is over; it cannot be cancelled")
            same_customer = (
                AppointmentSlot.customer.is_null()
                if slot.customer is None
                else (AppointmentSlot.customer == slot.customer)
            )
            done = (
                await AppointmentSlot.update({AppointmentSlot.state: CANCELLED})
                .where((AppointmentSlot.id == slot_id) & (AppointmentSlot.state == slot.state) & same_customer)
                .returning(AppointmentSlot.id)
            )
            if done:
                break
            # a customer booked or cancelled between our read and our write: look again
        else:
            raise SlotUnavailable("the slot keeps changing; try again")
        notified = slot.state == BOOKED and slot.customer is not None
        if notified:
            await _notify_cancelled(int(slot.customer), int(slot.manager), starts)
        await audit.record(
            "video.slot_cancelled",
            "appointment_slot",
            slot_id,
            before={"state": slot.state, "customer": slot.customer},
            after={"state": CANCELLED},
            detail={"customer_notified": notified},
        )
        return _day_slot_out((await _rows(AppointmentSlot.id == slot_id, limit=1))[0])


async def _notify_cancelled(customer_id: int, manager_id: int, starts: datetime) -> None:
    """Into the outbox (app/notifications delivers it), in the same transaction."""
    customer = await Customer.select(Customer.account, Customer.full_name).where(Customer.id == customer_id).first()
    manager = await Account.select(Account.display_name).where(Account.id == manager_id).first()
    if customer is None:
        return
    who = manager["display_name"] if manager else "your account manager"
    when = local_label(starts)
    await Notification.insert(
        Notification(
            account=customer["account"],
            subject="Your video appointment was cancelled · 您的视频预约已取消",
            body=(
                f"Dear {customer['full_name']}, your video appointment with {who} on {when} "
                f"({LOCAL_ZONE_NAME}) was cancelled by the bank. Please book another time at /appointments. "
                f"您于 {when} 与 {who} 的视频预约已被取消，请在 /appointments 重新预约。"
            ),
            created_at=now(),
        )
    )


async def complete_appointment(slot_id: int) -> bool:
    """Mark a booked slot ``done`` once its session took place (called by the session
    service); ``False`` if it was not booked."""
    async with transaction():
        done = (
            await AppointmentSlot.update({AppointmentSlot.state: DONE})
            .where((AppointmentSlot.id == slot_id) & (AppointmentSlot.state == BOOKED))
            .returning(AppointmentSlot.id)
        )
        if done:
            await audit.record(
                "video.appointment_done", "appointment_slot", slot_id, before={"state": BOOKED}, after={"state": DONE}
            )
    return bool(done)
