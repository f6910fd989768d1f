"""Background work of kyc/: expire stale cases, erase biometrics past retention."""

from __future__ import annotations

from typing import Any

from app.db import transaction
from app.jobs import JobKind
from kyc import service


async def _expire(_: dict[str, Any]) -> None:
    async with transaction():
        await service.expire_cases()


async def _retention(_: dict[str, Any]) -> None:
    async with transaction():
        await service.erase_expired_biometrics()


async def _always() -> list[dict[str, Any]]:
    """Housekeeping has no backlog rows: offer one run per sweep (every minute)."""
    return [{}]


JOBS = [
    JobKind("kyc.expire_cases", _expire, _always, concurrency=1),
    JobKind("kyc.erase_expired_biometrics", _retention, _always, concurrency=1),
]
