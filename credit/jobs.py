"""Background work of credit/: retry applications waiting for the tax gateway.

An application whose tax data could not be fetched waits in ``data_pending``
with the time of its next attempt; the sweep (at start-up and every minute)
offers every due one, and the handler calls the gateway again outside any
transaction, then records the outcome in one. The row is the truth: a job for
an application decided meanwhile, or not due yet, does nothing.
"""

from __future__ import annotations

from typing import Any

from app.db import transaction
from app.jobs import JobKind
from credit import decisions

RETRY_PENDING = "credit.retry_pending_application"


async def retry_pending(payload: dict[str, Any]) -> None:
    gathered = await decisions.gather_retry(int(payload["application_id"]))
    if gathered is None:
        return
    async with transaction():
        await decisions.record(gathered)


async def due_applications() -> list[dict[str, Any]]:
    return [{"application_id": app_id} for app_id in await decisions.due_pending()]


JOBS = [JobKind(RETRY_PENDING, retry_pending, due_applications, concurrency=2)]
