"""The process pool for CPU-heavy work (password hashing, faces, signing, backtests).

The event loop never runs such work itself: ``await run_cpu(fn, *args)`` ships it
to a worker process. ``fn`` must be a module-level function (picklable). The pool
belongs to the process (not to one app instance) and is started on first use.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


def _exit_with(owner: int) -> None:
    """End this worker once the process that owns the pool is gone.

    A pool whose owner dies without shutting it down (killed, crashed) would leave its
    workers waiting forever (each holds both ends of its task queue, so it never sees
    EOF), with the face models they loaded: hundreds of MB each, per server start."""
    while True:
        time.sleep(1.0)
        try:
            os.kill(owner, 0)
        except ProcessLookupError:
            os._exit(0)
        except PermissionError:  # alive, owned by someone else (cannot happen for our parent)
            continue


def _worker_init(owner: int | None = None) -> None:
    """One thread per worker: the pool is the parallelism, nested thread pools
    (OpenCV, BLAS) would only fight over the same cores."""
    if owner is not None:
        threading.Thread(target=_exit_with, args=(owner,), name="owner-watch", daemon=True).start()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    try:
        import cv2

        cv2.setNumThreads(1)
    except ImportError:  # a deployment without OpenCV runs no face work
        pass


class CpuPool:
    def __init__(self, workers: int = 2) -> None:
        self.workers = workers
        self._executor: ProcessPoolExecutor | None = None

    def executor(self) -> ProcessPoolExecutor:
        # forkserver: workers start from a clean process, safe beside the
        # event loop's and the database driver's threads.
        if self._executor is None:
            self._executor = ProcessPoolExecutor(
                max_workers=self.workers,
                mp_context=multiprocessing.get_context("forkserver"),
                initializer=_worker_init,
                initargs=(os.getpid(),),
            )
        return self._executor

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.executor(), fn, *args)

    def shutdown(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None


POOL = CpuPool()


def configure(workers: int) -> None:
    """Set the pool's size; takes effect when the pool starts."""
    POOL.workers = workers


async def run_cpu(fn: Callable[..., T], *args: Any) -> T:
    return await POOL.run(fn, *args)
