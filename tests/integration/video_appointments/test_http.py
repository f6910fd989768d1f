"""Appointments over HTTP: who may call what, the bodies on the wire, races between two bookers."""

# ruff: noqa: RUF001  # the pages separate times with an en dash on purpose

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.helpers import Person, bearer, make_customer, make_staff
from tests.integration.video_appointments.conftest import future_day, insert_slot


async def _open(
    client: Any, manager: Person, day: Any, start: str = "10:00", end: str = "11:00"
) -> list[dict[str, Any]]:
    r = await client.post(
        "/api/video/slots",
        json={"date": day.isoformat(), "start": start, "end": end, "minutes": 20},
        headers=await bearer(manager.account_id),
    )
    assert r.status_code == 201, r.text
    slots: list[dict[str, Any]] = r.json()
    return slots


async def test_manager_opens_customer_books_cancels_and_rebooks(
    client: Any, manager: Person, alice: Person, bob: Person
) -> None:
    day = future_day()
    slots = await _open(client, manager, day)
    assert [s["state"] for s in slots] == ["open"] * 3
    assert set(slots[0]) == {"id", "managerName", "startsAt", "endsAt", "minutes", "state"}
    assert slots[0]["managerName"] == "Staff account_manager"
    again = await _open(client, manager, day)
    assert [s["id"] for s in again] == [s["id"] for s in slots]  # idempotent

    me = await bearer(alice.account_id)
    r = await client.get("/api/video/slots", params={"date": day.isoformat()}, headers=me)
    assert r.status_code == 200
    listed = [s for s in r.json() if s["id"] in {x["id"] for x in slots}]
    assert len(listed) == 3
    assert manager.email not in r.text

    first = slots[0]["id"]
    r = await client.post(f"/api/video/slots/{first}/booking", json={"purpose": "loan"}, headers=me)
    assert r.status_code == 201, r.text
    assert r.json()["state"] == "booked"
    assert r.json()["purpose"] == "loan"
    assert r.json()["cancellable"] is True

    r = await client.get("/api/video/appointments", headers=me)
    assert [a["id"] for a in r.json()] == [first]

    r = await client.post(f"/api/video/slots/{slots[1]['id']}/booking", json={"purpose": "claim"}, headers=me)
    assert r.status_code == 409
    assert r.json()["error"] == "booking_exists"

    # another customer can neither book the taken slot nor cancel the booking
    them = await bearer(bob.account_id)
    r = await client.post(f"/api/video/slots/{first}/booking", json={"purpose": "loan"}, headers=them)
    assert (r.status_code, r.json()["error"]) == (409, "slot_unavailable")
    r = await client.delete(f"/api/video/slots/{first}/booking", headers=them)
    assert (r.status_code, r.json()["error"]) == (404, "slot_not_found")

    r = await client.delete(f"/api/video/slots/{first}/booking", headers=me)
    assert r.status_code == 200
    assert r.json()["state"] == "open"
    assert (await client.get("/api/video/appointments", headers=me)).json() == []
    r = await client.post(f"/api/video/slots/{slots[1]['id']}/booking", json={"purpose": "claim"}, headers=me)
    assert r.status_code == 201


async def test_two_simultaneous_bookings_of_one_slot_exactly_one_wins(client: Any, manager: Person) -> None:
    [slot] = await _open(client, manager, future_day(), "13:00", "13:20")
    people = [await make_customer(f"抢{i}") for i in range(2)]
    headers = [await bearer(p.account_id) for p in people]
    answers = await asyncio.gather(
        *(
            client.post(f"/api/video/slots/{slot['id']}/booking", json={"purpose": "identity"}, headers=h)
            for h in headers
        )
    )
    assert sorted(r.status_code for r in answers) == [201, 409], [r.text for r in answers]
    loser = next(r for r in answers if r.status_code == 409)
    assert loser.json()["error"] == "slot_unavailable"
    assert set(loser.json()) == {"error", "message", "fields", "request_id"}


async def test_past_slots_are_neither_listed_nor_bookable(client: Any, manager: Person, alice: Person) -> None:
    begun = await insert_slot(manager, datetime.now(UTC) - timedelta(minutes=1))
    me = await bearer(alice.account_id)
    r = await client.get("/api/video/slots", headers=me)
    assert begun not in {s["id"] for s in r.json()}
    r = await client.post(f"/api/video/slots/{begun}/booking", json={"purpose": "loan"}, headers=me)
    assert (r.status_code, r.json()["error"]) == (409, "slot_started")
    r = await client.post("/api/video/slots/999999999/booking", json={"purpose": "loan"}, headers=me)
    assert r.status_code == 404


async def test_overlapping_publication_is_refused(client: Any, manager: Person) -> None:
    day = future_day()
    await _open(client, manager, day, "10:00", "11:00")
    r = await client.post(
        "/api/video/slots",
        json={"date": day.isoformat(), "start": "10:10", "end": "10:50", "minutes": 20},
        headers=await bearer(manager.account_id),
    )
    assert r.status_code == 409
    body = r.json()
    assert body["error"] == "slot_overlap"
    assert "10:00-10:20" in body["message"]
    assert body["fields"][0]["path"] == "$.start"


async def test_manager_day_and_cancelling_a_booked_slot(client: Any, manager: Person, alice: Person) -> None:
    from app.tables import Notification

    day = future_day()
    slots = await _open(client, manager, day, "09:00", "09:40")
    me = await bearer(alice.account_id)
    booked = slots[1]["id"]
    await client.post(f"/api/video/slots/{booked}/booking", json={"purpose": "claim"}, headers=me)

    boss = await bearer(manager.account_id)
    r = await client.get("/api/video/day", params={"date": day.isoformat()}, headers=boss)
    assert r.status_code == 200
    body = r.json()
    assert (body["date"], body["timeZone"]) == (day.isoformat(), "Asia/Shanghai")
    rows = {s["id"]: s for s in body["slots"]}
    assert list(rows) == [s["id"] for s in slots]
    assert rows[booked]["customerName"] == "张*"
    assert rows[booked]["purpose"] == "claim"
    assert rows[slots[0]["id"]]["customerName"] is None
    assert "张伟" not in r.text

    other_manager = await bearer((await make_staff("account_manager")).account_id)
    r = await client.delete(f"/api/video/slots/{booked}", headers=other_manager)
    assert (r.status_code, r.json()["error"]) == (403, "not_your_slot")
    assert (await client.get("/api/video/day", params={"date": day.isoformat()}, headers=other_manager)).json()[
        "slots"
    ] == []

    r = await client.delete(f"/api/video/slots/{booked}", headers=boss)
    assert r.status_code == 200
    assert r.json()["state"] == "cancelled"
    assert (await client.get("/api/video/appointments", headers=me)).json() == []
    note = Notification.subject.like("%cancelled%") & (Notification.account == alice.account_id)
    for _ in range(50):  # delivered by the job queue right after the request, not at the next sweep
        found = await Notification.select(Notification.status).where(note).first()
        assert found is not None
        if found["status"] == "sent":
            break
        await asyncio.sleep(0.1)
    assert found["status"] == "sent"

    admin = await bearer((await make_staff("admin")).account_id)
    r = await client.delete(f"/api/video/slots/{slots[0]['id']}", headers=admin)
    assert (r.status_code, r.json()["state"]) == (200, "cancelled")


@pytest.mark.parametrize(
    ("method", "url", "body", "path"),
    [
        ("GET", "/api/video/slots?date=2026-02-30", None, "$.date"),
        ("GET", "/api/video/slots?date=tomorrow", None, "$.date"),
        ("POST", "/api/video/slots/1/booking", {"purpose": "holiday"}, "$.purpose"),
        ("POST", "/api/video/slots/1/booking", {}, "purpose"),
    ],
)
async def test_customer_validation_errors_name_the_field(
    client: Any, alice: Person, method: str, url: str, body: Any, path: str
) -> None:
    r = await client.request(method, url, json=body, headers=await bearer(alice.account_id))
    assert r.status_code == 422, r.text
    assert r.json()["error"] == "validation"
    field = r.json()["fields"][0]
    if path.startswith("$"):
        assert field["path"] == path
    else:  # a missing field is reported at the body (``$.data``), named in the message
        assert path in field["message"]


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({"date": "2026-13-01"}, "$.date"),
        ({"date": "{day}", "start": "25:00"}, "$.start"),
        ({"date": "{day}", "start": "12:00", "end": "11:00"}, "$.end"),
        ({"date": "{day}", "minutes": 500}, "$.minutes"),
        ({"date": "{day}", "timeZone": "Nowhere/City"}, "$.timeZone"),
        ({"date": "2020-01-01"}, "$.date"),
    ],
)
async def test_publication_validation_errors_name_the_field(
    client: Any, manager: Person, body: dict[str, Any], path: str
) -> None:
    body = {k: (future_day().isoformat() if v == "{day}" else v) for k, v in body.items()}
    r = await client.post("/api/video/slots", json=body, headers=await bearer(manager.account_id))
    assert r.status_code == 422, r.text
    assert r.json()["fields"][0]["path"] == path
    assert set(r.json()) == {"error", "message", "fields", "request_id"}


async def test_roles_are_enforced(client: Any, manager: Person, alice: Person) -> None:
    day = future_day().isoformat()
    risk = await bearer((await make_staff("risk_officer")).account_id)
    customer = await bearer(alice.account_id)
    boss = await bearer(manager.account_id)
    assert (await client.post("/api/video/slots", json={"date": day}, headers=customer)).status_code == 403
    assert (await client.post("/api/video/slots", json={"date": day}, headers=risk)).status_code == 403
    assert (await client.get("/api/video/slots", headers=boss)).status_code == 403
    assert (await client.get("/api/video/day", headers=customer)).status_code == 403
    assert (await client.get("/api/video/appointments", headers=boss)).status_code == 403
    assert (await client.delete("/api/video/slots/1", headers=customer)).status_code == 403
    assert (await client.get("/api/video/slots")).status_code == 401
    page = await client.get("/appointments")
    assert page.status_code == 302
    assert page.headers["location"].startswith("/login")
    assert (await client.get("/console/day", headers=customer)).status_code == 403
    assert (await client.get("/appointments", headers=boss)).status_code == 403


async def test_pages_render_for_their_roles(client: Any, manager: Person, alice: Person) -> None:
    day = future_day()
    slots = await _open(client, manager, day, "11:00", "11:40")
    await client.post(
        f"/api/video/slots/{slots[0]['id']}/booking", json={"purpose": "loan"}, headers=await bearer(alice.account_id)
    )
    r = await client.get("/appointments", params={"date": day.isoformat()}, headers=await bearer(alice.account_id))
    assert r.status_code == 200
    assert "Video appointment" in r.text
    assert str(slots[0]["id"]) in r.text  # the booking, embedded for the script
    r = await client.get("/console/day", params={"date": day.isoformat()}, headers=await bearer(manager.account_id))
    assert r.status_code == 200
    assert "11:00–11:20" in r.text
    assert "张*" in r.text
    assert "张伟" not in r.text
    r = await client.get("/console/day", params={"date": "not-a-day"}, headers=await bearer(manager.account_id))
    assert r.status_code == 200  # a page falls back to today rather than answering JSON
