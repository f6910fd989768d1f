"""The process pool for CPU-heavy work (password hashing, faces, signing, backtests).

The event loop never runs such work itself: ``await run_cpu(fn, *args)`` ships it
to a worker process. ``fn`` must be a module-level function (picklable).
"""

from __future__ import annotations

import asyncio
import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")
_pool: ProcessPoolExecutor | None = None
_workers = 2


def configure(workers: int) -> None:
    global _workers
    _workers = workers


def pool() -> ProcessPoolExecutor:
    """The shared pool, started on first use (forkserver: safe beside threads)."""
    global _pool
    if _pool is None:
        _pool = ProcessPoolExecutor(max_workers=_workers, mp_context=multiprocessing.get_context("forkserver"))
    return _pool


async def run_cpu(fn: Callable[..., T], *args: Any) -> T:
    return await asyncio.get_running_loop().run_in_executor(pool(), fn, *args)


def shutdown() -> None:
    global _pool
    if _pool is not None:
        _pool.shutdown(wait=True, cancel_futures=True)
        _pool = None
