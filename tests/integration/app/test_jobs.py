"""Background jobs: delivered through the queue, idempotent, resumed after a restart."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from app.factory import create_app
from app.notifications import deliver
from app.tables import Notification
from tests.conftest import running
from tests.helpers import PASSWORD, id_number, make_customer, mobile


async def _wait_sent(note_id: int, timeout: float = 15.0) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        row = await Notification.select().where(Notification.id == note_id).first()
        assert row is not None
        if row["status"] == "sent" or asyncio.get_running_loop().time() > deadline:
            return row
        await asyncio.sleep(0.1)


async def test_signup_welcome_message_is_delivered_by_the_queue(client: Any, uid: str, work_dir: Path) -> None:
    r = await client.post(
        "/api/customers",
        json={
            "email": f"jobs-{uid}@example.cn",
            "password": PASSWORD,
            "fullName": "王五",
            "phone": mobile(),
            "idNumber": id_number(),
        },
    )
    assert r.status_code == 201
    from app.tables import Customer

    account = (await Customer.select(Customer.account).where(Customer.id == r.json()["id"]).first())["account"]
    note = await Notification.select().where(Notification.account == account).first()
    row = await _wait_sent(note["id"])
    assert row["status"] == "sent"
    assert row["attempts"] == 1
    lines = (work_dir / "var" / "outbox" / "messages.jsonl").read_text(encoding="utf-8").splitlines()
    assert any(json.loads(line)["to"] == account for line in lines)


async def test_handler_is_idempotent() -> None:
    me = await make_customer()
    note = await Notification.select().where(Notification.account == me.account_id).first()
    await deliver({"id": note["id"]})
    await deliver({"id": note["id"]})
    row = await Notification.select().where(Notification.id == note["id"]).first()
    assert row["status"] == "sent"
    assert row["attempts"] == 1


async def test_unfinished_work_resumes_when_the_app_starts() -> None:
    """Work recorded in the database but never queued (a crash, or the in-memory
    queue lost with a restart) is found by the start-up sweep and done."""
    me = await make_customer()
    note = Notification(
        account=me.account_id, subject="Left behind", body="from before the restart", created_at=datetime.now(UTC)
    )
    await note.save()
    app = create_app()
    async with running(app):
        row = await _wait_sent(note.id)
    assert row["status"] == "sent"
