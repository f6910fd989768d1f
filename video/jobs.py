"""Background work of video/: convert recordings of finished sessions, retention, stale queue entries."""

from __future__ import annotations

from typing import Any

from app.db import transaction
from app.jobs import JobKind
from video import recordings, service
from video.hub import CONVERT_JOB


async def _convert(payload: dict[str, Any]) -> None:
    await recordings.convert_session(int(payload["session_id"]), room_closed=bool(payload.get("room_closed")))


async def _pending() -> list[dict[str, Any]]:
    async with transaction():
        return [{"session_id": session_id} for session_id in await recordings.pending_sessions()]


async def _erase(_: dict[str, Any]) -> None:
    async with transaction():
        await recordings.erase_expired()


async def _expire_waiting(_: dict[str, Any]) -> None:
    async with transaction():
        await service.expire_waiting()


async def _always() -> list[dict[str, Any]]:
    return [{}]


JOBS = [
    JobKind(CONVERT_JOB, _convert, _pending, concurrency=1),
    JobKind("video.erase_expired_recordings", _erase, _always, concurrency=1),
    JobKind("video.expire_waiting", _expire_waiting, _always, concurrency=1),
]
