"""Builders for appointment tests: a manager with published slots, customers, a day ahead."""

from __future__ import annotations

import datetime as dt
import secrets
from datetime import UTC, datetime, timedelta

import pytest

from tests.helpers import Person, make_customer, make_staff


def future_day(offset: int | None = None) -> dt.date:
    """A local day ahead (a random one within a month when not given), so slots there have not begun."""
    from video.appointments import local_today

    return local_today() + timedelta(days=offset if offset is not None else 2 + secrets.randbelow(28))


async def publish(
    manager: Person, day: dt.date, start: str = "10:00", end: str = "11:00", minutes: int = 20
) -> list[int]:
    from video import appointments

    slots = await appointments.open_slots(manager.account_id, day, start=start, end=end, minutes=minutes)
    return [int(s.id) for s in slots]


async def insert_slot(
    manager: Person, starts_at: datetime, *, minutes: int = 20, customer: Person | None = None, purpose: str = "loan"
) -> int:
    """A slot written directly (e.g. one that has already begun, which the service would refuse to open)."""
    from video.tables import AppointmentSlot

    slot = AppointmentSlot(
        manager=manager.account_id,
        starts_at=starts_at,
        minutes=minutes,
        state="booked" if customer else "open",
        customer=customer.customer_id if customer else None,
        purpose=purpose if customer else "",
        booked_at=datetime.now(UTC) if customer else None,
        created_at=datetime.now(UTC),
    )
    await slot.save()
    return int(slot.id)


@pytest.fixture
async def manager() -> Person:
    return await make_staff("account_manager")


@pytest.fixture
async def alice() -> Person:
    return await make_customer("张伟")


@pytest.fixture
async def bob() -> Person:
    return await make_customer("欧阳娜娜")
