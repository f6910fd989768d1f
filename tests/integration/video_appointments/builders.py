"""Ids for the route matrix (tests/integration/test_route_matrix.py): a booked slot per customer."""

from __future__ import annotations

from datetime import timedelta

from tests.helpers import Person


async def matrix_ids(person: Person, manager_account: int) -> dict[str, int]:
    """A slot of the matrix's account manager, booked by ``person``. Called once per
    customer of the matrix: the manager's two slots are opened idempotently and each
    customer takes the first one still open."""
    from video import appointments

    assert person.customer_id is not None
    day = appointments.local_today() + timedelta(days=30)
    slots = await appointments.open_slots(manager_account, day, start="10:00", end="10:40", minutes=20)
    slot = next(s for s in slots if s.state == appointments.OPEN)
    await appointments.book(person.customer_id, int(slot.id), "loan")
    return {"slot_id": int(slot.id)}
