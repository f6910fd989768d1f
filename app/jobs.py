"""Background work on PgQueuer: its PostgreSQL queue in production, its in-memory
queue in the embedded (SQLite) mode.

The database rows of each domain are the source of truth, never the queue: a
job carries only an id, its handler re-reads the row and does nothing when the
work is already done (handlers are idempotent), and each job kind has a
``sweep`` that finds unfinished rows. Sweeps run at start-up and every minute,
so work lost with an in-memory queue (a restart) or with a failed attempt is
picked up again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import asyncpg
import msgspec
from pgqueuer import PgQueuer, Queries
from pgqueuer.db import AsyncpgDriver
from pgqueuer.models import Job

from app.logs import get_logger
from app.settings import Settings

log = get_logger(__name__)

Handler = Callable[[dict[str, Any]], Awaitable[None]]
Sweep = Callable[[], Awaitable[list[dict[str, Any]]]]


@dataclass(frozen=True)
class JobKind:
    """One kind of background work: a handler and the sweep that finds its backlog."""

    name: str
    handler: Handler
    sweep: Sweep | None = None
    concurrency: int = 0


async def install_queue_schema(dsn: str) -> bool:
    """Create PgQueuer's tables when missing; True when it installed them."""
    conn = await asyncpg.connect(dsn)
    try:
        queries = Queries(AsyncpgDriver(conn))
        if await queries.schema_is_installed():
            return False
        await queries.install()
        return True
    finally:
        await conn.close()


class JobRunner:
    """Owns the queue for one process: enqueue from requests, run handlers."""

    def __init__(self, settings: Settings, kinds: list[JobKind]) -> None:
        self.settings = settings
        self.kinds = {k.name: k for k in kinds}
        self._pgq: PgQueuer | None = None
        self._pool: asyncpg.Pool | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def backend(self) -> str:
        return "postgresql" if self.settings.is_postgres else "in-memory"

    async def start(self, *, run_worker: bool = True) -> None:
        if self.settings.is_postgres:
            self._pool = await asyncpg.create_pool(self.settings.database_url, min_size=1, max_size=4)
            self._pgq = PgQueuer.from_asyncpg_pool(self._pool)
        else:
            self._pgq = PgQueuer.in_memory()
        for kind in self.kinds.values():
            self._pgq.entrypoint(kind.name, concurrency_limit=kind.concurrency)(self._wrap(kind))

        @self._pgq.schedule("branchless.sweep", "* * * * *")
        async def _sweep(_: Any) -> None:
            await self.sweep()

        if run_worker:
            self._task = asyncio.create_task(self._pgq.run(dequeue_timeout=timedelta(seconds=5)))
            await self.sweep()

    def _wrap(self, kind: JobKind) -> Callable[[Job], Awaitable[None]]:
        async def run(job: Job) -> None:
            payload = msgspec.json.decode(job.payload or b"{}")
            try:
                await kind.handler(payload)
            except Exception:
                # The row stays unfinished; the next sweep offers it again.
                log.exception("job failed", job=kind.name, job_id=int(job.id))

        return run

    async def enqueue(self, name: str, payload: dict[str, Any]) -> None:
        if name not in self.kinds:
            raise KeyError(f"unknown job kind {name!r}")
        if self._pgq is None:
            raise RuntimeError("the job runner is not started")
        await self._pgq.queries.enqueue(name, msgspec.json.encode(payload))  # type: ignore[union-attr]

    async def sweep(self) -> int:
        """Enqueue every unfinished item each kind's sweep reports."""
        count = 0
        for kind in self.kinds.values():
            if kind.sweep is None:
                continue
            try:
                for payload in await kind.sweep():
                    await self.enqueue(kind.name, payload)
                    count += 1
            except Exception:
                log.exception("sweep failed", job=kind.name)
        return count

    async def stop(self) -> None:
        if self._pgq is not None:
            self._pgq.shutdown.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, timeout=10)
            except (TimeoutError, asyncio.CancelledError):
                self._task.cancel()
            self._task = None
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
