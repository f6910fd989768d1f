"""Group commit: many requests' writes in one transaction, each reply after its commit.

A decision's own work is small next to a transaction's fixed costs (a pool
checkout, BEGIN/COMMIT, a WAL flush, and the audit chain's lock, which
serialises every writer of every process). ``GroupCommit`` queues the items of
concurrent requests; while one batch is being written the next one gathers, so
the batch size follows the load by itself (one item when idle, no timer to
wait for). A caller's ``submit`` returns only once the transaction holding its
item has committed (durable before reply).

The same batching serves reads that many requests make at once (one query for
all of them instead of a round trip each): ``write`` is then the batched read.

Errors: ``write`` returns one result per item, an exception instance for an
item that failed on its own (its batch still commits the others). When the
batch as a whole fails (a constraint, the connection), every item is retried in
a transaction of its own, so each caller gets its own item's outcome and one
bad item never fails the others.
"""

from __future__ import annotations

import asyncio
import contextvars
import weakref
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

Writer = Callable[[list[T]], Awaitable[list[R | Exception]]]


class GroupCommit(Generic[T, R]):
    """Batches ``submit``ted items for ``write`` (one instance per event loop)."""

    def __init__(self, write: Writer[T, R], max_batch: int) -> None:
        self._write = write
        self._max = max_batch
        self._queue: list[tuple[T, asyncio.Future[R]]] = []
        self._task: asyncio.Task[None] | None = None
        self.batches = 0
        """Transactions written so far (tests and metrics)."""

    async def submit(self, item: T) -> R:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        self._queue.append((item, future))
        if self._task is None:
            # A fresh context: the writer must not inherit a caller's transaction
            # (Piccolo keeps it in a context variable) or request context.
            self._task = loop.create_task(self._drain(), context=contextvars.Context())
        return await future

    async def _drain(self) -> None:
        batch: list[tuple[T, asyncio.Future[R]]] = []
        try:
            while self._queue:
                await asyncio.sleep(0)  # let the requests that are ready join this batch
                batch, self._queue = self._queue[: self._max], self._queue[self._max :]
                # a caller that went away before its batch started is not written
                batch = [(item, f) for item, f in batch if not f.done()]
                if batch:
                    await self._flush(batch)
                batch = []
        except BaseException as exc:  # cancelled with the loop: nobody may wait forever
            for _, future in batch + self._queue:
                if not future.done():
                    future.set_exception(RuntimeError(f"group commit stopped: {exc!r}"))
            self._queue = []
            raise
        finally:
            self._task = None

    async def _flush(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        self.batches += 1
        try:
            results = await self._write([item for item, _ in batch])
        except Exception as exc:
            if len(batch) == 1:
                if not batch[0][1].done():
                    batch[0][1].set_exception(exc)
                return
            for one in batch:  # find out whose item it was: each alone
                await self._flush([one])
            return
        for (_, future), result in zip(batch, results, strict=True):
            if future.done():
                continue
            if isinstance(result, Exception):
                future.set_exception(result)
            else:
                future.set_result(result)


def per_loop(
    registry: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, GroupCommit[T, R]],
    make: Callable[[], GroupCommit[T, R]],
) -> GroupCommit[T, R]:
    """The running event loop's instance in ``registry`` (made on first use): one per
    process in a server, while tests run many loops."""
    loop = asyncio.get_running_loop()
    instance = registry.get(loop)
    if instance is None:
        instance = registry[loop] = make()
    return instance
