"""Messages to customers and staff: an outbox table delivered by a background job.

Delivery goes through a transport; the embedded one appends to a file under
``var/outbox/`` (what a developer reads instead of an inbox). A production
deployment plugs an SMS or mail gateway in behind the same interface.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from app.db import transaction
from app.jobs import JobKind
from app.settings import get_settings
from app.tables import Notification

JOB = "app.deliver_notification"


class Transport(Protocol):
    async def deliver(self, to_account: int, channel: str, subject: str, body: str) -> None: ...


class FileTransport:
    """Appends each message as one JSON line to ``var/outbox/messages.jsonl``."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / "messages.jsonl"

    async def deliver(self, to_account: int, channel: str, subject: str, body: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps({"to": to_account, "channel": channel, "subject": subject, "body": body}, ensure_ascii=False)
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(line + "\n")


def transport() -> Transport:
    return FileTransport(Path(get_settings().var_dir) / "outbox")


async def deliver(payload: dict[str, Any]) -> None:
    """Send one pending notification; a second run for the same id does nothing."""
    async with transaction():
        note = (
            await Notification.objects()
            .where((Notification.id == payload["id"]) & (Notification.status == "pending"))
            .first()
        )
        if note is None:
            return
        note.attempts += 1
        await transport().deliver(note.account, note.channel, note.subject, note.body)
        note.status = "sent"
        note.sent_at = datetime.now(UTC)
        await note.save()


async def pending() -> list[dict[str, Any]]:
    rows = await Notification.select(Notification.id).where(Notification.status == "pending").limit(1000)
    return [{"id": r["id"]} for r in rows]


JOBS = [JobKind(JOB, deliver, pending, concurrency=0)]
