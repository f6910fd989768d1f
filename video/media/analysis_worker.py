"""Run the analysis peer in a worker process and stream its sampled frames back to the caller.

Why a process: decoding video and converting pixels is CPU work that must never run on
the web process's event loop, and aiortc's threads and sockets are best kept away from
it too. The worker restricts aioice to the allowed networks (process-wide, see ``ice``),
runs one ``AnalysisPeer`` and sends frames through a bounded queue: when the consumer
falls behind, the worker drops frames rather than stall decoding. An optional
``processor`` (a picklable top-level function) runs on each frame inside the worker, so
kyc/ can do its face work there and send back only the small result.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import multiprocessing.context
import multiprocessing.forkserver
import os
import queue
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, Literal

import msgspec

from video.media.analysis_peer import AnalysisConfig, AnalysisPeer, PeerOutcome, PeerStats, SampledFrame
from video.media.ice import restrict_host_addresses

logger = logging.getLogger(__name__)

FrameProcessor = Callable[[SampledFrame], Any]
PRELOAD = ["video.media.analysis_worker"]
"""Imported once in the fork server (aiortc, PyAV, numpy, OpenCV): workers start in milliseconds."""
StartMethod = Literal["spawn", "forkserver"]


class FrameItem(msgspec.Struct, frozen=True):
    """A sampled frame, or what ``processor`` made of it."""

    payload: Any
    sent_at: float


class WorkerEnded(msgspec.Struct, frozen=True):
    """The last message of a worker: the peer's outcome and frames the worker had to drop."""

    outcome: PeerOutcome
    dropped: int


def _worker_main(
    config: AnalysisConfig,
    out: multiprocessing.Queue[FrameItem | WorkerEnded],
    stop: threading.Event,
    processor: FrameProcessor | None,
) -> None:
    """Entry point of the worker process."""
    logging.basicConfig(level=os.environ.get("BRANCHLESS_MEDIA_LOG_LEVEL", "WARNING"))
    restrict_host_addresses(config.allowed_networks)
    dropped = 0

    async def on_frame(frame: SampledFrame) -> None:
        nonlocal dropped
        payload = processor(frame) if processor is not None else frame
        try:
            out.put_nowait(FrameItem(payload=payload, sent_at=time.time()))
        except queue.Full:
            dropped += 1

    async def main() -> PeerOutcome:
        peer = AnalysisPeer(config, on_frame)
        loop = asyncio.get_running_loop()
        watcher = loop.run_in_executor(None, stop.wait)
        watcher.add_done_callback(lambda _: peer.stop("stopped"))
        try:
            return await peer.run()
        finally:
            stop.set()  # releases the watcher thread so the loop can close
            await watcher

    try:
        outcome = asyncio.run(main())
    except Exception as exc:  # the parent must learn why, whatever happened
        outcome = PeerOutcome(reason="error", stats=PeerStats(), error=f"{type(exc).__name__}: {exc}")
    out.put(WorkerEnded(outcome=outcome, dropped=dropped))
    out.close()
    out.join_thread()


def prewarm(main_imports: Sequence[str] = ()) -> None:
    """Start the fork server now, so the first session's worker does not pay for the imports.

    Call once at start-up of the process that will own the workers (it must already be in
    its final network namespace: workers inherit the fork server's). ``main_imports``: what
    the parent's ``__main__`` imports (for ``branchless serve``, ``app.cli`` and the app).
    Every child re-runs the parent's main script before its target (CPython's fork server
    never receives the main path its ``"__main__"`` preload would need); with those modules
    preloaded the re-run finds them cached. Measured here: 1.2-2 s per worker without, 10 ms with.
    """
    multiprocessing.get_context("forkserver").set_forkserver_preload([*PRELOAD, *main_imports])
    multiprocessing.forkserver.ensure_running()


def _forkserver_running() -> bool:
    return getattr(multiprocessing.forkserver._forkserver, "_forkserver_pid", None) is not None


class AnalysisWorker:
    """The parent's handle on one analysis worker process.

    Typical use (in the signalling layer, once the customer publishes)::

        worker = AnalysisWorker(config, processor=kyc_frame_processor)
        worker.start()
        async for item in worker.frames():   # ends when the room or feed ends
            await kyc.handle(item.payload)
        outcome = worker.outcome
    """

    def __init__(
        self,
        config: AnalysisConfig,
        *,
        processor: FrameProcessor | None = None,
        start_method: StartMethod = "forkserver",
        queue_size: int = 16,
    ) -> None:
        self.config = config
        self._processor = processor
        self._ctx: multiprocessing.context.SpawnContext | multiprocessing.context.ForkServerContext
        if start_method == "forkserver":
            self._ctx = multiprocessing.get_context("forkserver")
            if not _forkserver_running():
                self._ctx.set_forkserver_preload(PRELOAD)
        else:
            self._ctx = multiprocessing.get_context("spawn")
        self._queue: multiprocessing.Queue[FrameItem | WorkerEnded] = self._ctx.Queue(maxsize=queue_size)
        self._stop = self._ctx.Event()
        self._process: multiprocessing.process.BaseProcess | None = None
        self.outcome: PeerOutcome | None = None
        self.dropped = 0
        self.started_at: float | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def exitcode(self) -> int | None:
        return self._process.exitcode if self._process is not None else None

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.is_alive()

    def start(self) -> None:
        if self._process is not None:
            raise RuntimeError("worker already started")
        self._process = self._ctx.Process(
            target=_worker_main,
            args=(self.config, self._queue, self._stop, self._processor),
            name=f"analysis-{self.config.room_id}-{self.config.feed_id}",
            daemon=True,
        )
        self.started_at = time.time()
        self._process.start()

    async def frames(self, *, poll_s: float = 0.25) -> AsyncIterator[FrameItem]:
        """Yield frames until the worker ends; afterwards ``outcome`` tells why it ended."""
        while self.outcome is None:
            item = await self._receive(poll_s)
            if item is not None:
                yield item

    async def _receive(self, poll_s: float) -> FrameItem | None:
        """The next frame, or ``None``; records the outcome once the worker has ended."""
        try:
            item = await asyncio.to_thread(self._queue.get, True, poll_s)
        except queue.Empty:
            if self.outcome is not None or self._process is None or self._process.is_alive():
                return None
            try:  # its last message may have landed just before it exited
                item = await asyncio.to_thread(self._queue.get, True, 1.0)
            except queue.Empty:
                if self.outcome is None:  # another reader (frames() and stop()) may have got it
                    code = self._process.exitcode
                    self.outcome = PeerOutcome(
                        reason="error", stats=PeerStats(), error=f"worker exited with code {code}"
                    )
                return None
        if isinstance(item, WorkerEnded):
            self.outcome, self.dropped = item.outcome, item.dropped
            return None
        return item

    async def stop(self, *, timeout_s: float = 10.0) -> PeerOutcome | None:
        """Ask the worker to end (it leaves Janus cleanly), wait for it, kill it if it hangs."""
        if self._process is None:
            return None
        self._stop.set()
        deadline = time.monotonic() + timeout_s
        while self.outcome is None and time.monotonic() < deadline:
            await self._receive(0.25)  # frames still queued are dropped
        if self._process is not None:
            await asyncio.to_thread(self._process.join, max(0.0, deadline - time.monotonic()))
            if self._process.is_alive():
                logger.error("analysis worker %s did not stop; killing it", self._process.pid)
                self._process.kill()
                await asyncio.to_thread(self._process.join)
        self._queue.close()
        return self.outcome
