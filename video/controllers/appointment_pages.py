"""Pages of appointments (预约办): the customer's booking page and the manager's day.

The pages render what is there now; booking, cancelling and publishing go through
the JSON API (``/api/video/slots...``) with the page's session and CSRF token, so
every rule is enforced once, in ``video.appointments``.
"""

from __future__ import annotations

import datetime as dt
from datetime import timedelta
from typing import Any

import msgspec
from litestar import Controller, Request, get
from litestar.params import FromQuery
from litestar.response import Template

from app.security import Role, principal_of, requires_role
from video import appointments

PURPOSE_LABELS = {"loan": "贷款 · Loan", "claim": "理赔 · Insurance claim", "identity": "身份核验 · Identity check"}
BOOKING_DAYS = 14


def _day(raw: str | None, default: dt.date) -> dt.date:
    """A page tolerates a bad ``?date=`` (it shows today) rather than answering JSON."""
    try:
        return dt.date.fromisoformat(raw) if raw else default
    except ValueError:
        return default


class AppointmentPages(Controller):
    include_in_schema = False

    @get("/appointments", operation_id="appointments_page", guards=[requires_role(Role.customer)])
    async def appointments_page(self, request: Request[Any, Any, Any], date: FromQuery[str | None] = None) -> Template:
        """Pick a day, see its free slots, book one; see and cancel your own booking."""
        me = principal_of(request)
        assert me.customer_id is not None
        today = appointments.local_today()
        day = min(max(_day(date, today), today), today + timedelta(days=appointments.MAX_DAYS_AHEAD))
        mine = await appointments.upcoming_appointments(me.customer_id)
        return Template(
            "appointments.html",
            context={
                "me": me,
                "day": day.isoformat(),
                "today": today.isoformat(),
                "last_day": (today + timedelta(days=appointments.MAX_DAYS_AHEAD)).isoformat(),
                "days": [today + timedelta(days=i) for i in range(BOOKING_DAYS)],
                "purposes": PURPOSE_LABELS,
                "mine": msgspec.to_builtins(mine),
                "zone": appointments.LOCAL_ZONE_NAME,
            },
        )

    @get("/console/day", operation_id="manager_day_page", guards=[requires_role(Role.account_manager)])
    async def manager_day_page(self, request: Request[Any, Any, Any], date: FromQuery[str | None] = None) -> Template:
        """The manager's slots of one day (booked customers masked), and a form to open more."""
        me = principal_of(request)
        today = appointments.local_today()
        day = _day(date, today)
        found = await appointments.manager_day(me.account_id, day)
        zone = appointments.LOCAL_ZONE
        slots = [
            {
                "id": s.id,
                "start": s.starts_at.astimezone(zone).strftime("%H:%M"),
                "end": s.ends_at.astimezone(zone).strftime("%H:%M"),
                "state": s.state,
                "customer": s.customer_name,
                "purpose": PURPOSE_LABELS.get(s.purpose or "", s.purpose or ""),
                "cancellable": s.state == appointments.OPEN
                or (s.state == appointments.BOOKED and s.ends_at > appointments.now()),
            }
            for s in found.slots
        ]
        counts = {state: sum(1 for s in found.slots if s.state == state) for state in ("open", "booked", "done")}
        return Template(
            "manager_day.html",
            context={
                "me": me,
                "day": day,
                "today": today,
                "prev_day": (day - timedelta(days=1)).isoformat(),
                "next_day": (day + timedelta(days=1)).isoformat(),
                "slots": slots,
                "counts": counts,
                "zone": appointments.LOCAL_ZONE_NAME,
                "can_open": today <= day <= today + timedelta(days=appointments.MAX_DAYS_AHEAD),
            },
        )


CONTROLLERS = [AppointmentPages]
