"""Demo data of video/ for ``branchless seed``: the demo account manager's availability."""

from __future__ import annotations

from datetime import timedelta

from app.tables import Account
from video import appointments

DEMO_MANAGER = "manager@demo.branchless.cn"
DAYS = 3


async def seed_demo(customer_id: int | None) -> None:
    """Open the demo manager's slots (09:00-17:00, 20 minutes) for the next working days;
    idempotent, so every ``make run`` keeps a few days bookable."""
    manager = await Account.select(Account.id).where(Account.email == DEMO_MANAGER).first()
    if manager is None:
        return
    day, opened = appointments.local_today(), 0
    while opened < DAYS:
        day += timedelta(days=1)
        if day.weekday() < 5:
            await appointments.open_slots(manager["id"], day)
            opened += 1
