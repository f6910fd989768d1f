"""The platform's aiortc analysis peer: subscribe to the customer's video through Janus, sample frames.

It is a receive-only VideoRoom subscriber. It never sends or relays media: aiortc cannot
forward without decoding and re-encoding (20-38% of a core per stream here), which is
why Janus forwards and this peer only decodes one stream and keeps 2-5 frames a second
for kyc/ (face match, liveness). Run it in a worker process (``analysis_worker``), never
on the web process's event loop: decoding and colour conversion are CPU work.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Annotated, Any, Literal

import cv2
import msgspec
import numpy as np
import numpy.typing as npt
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError
from av import VideoFrame
from msgspec import Meta

from video.media.errors import (
    JanusError,
    JanusTimeout,
    JanusUnavailable,
    MediaError,
    VideoRoomNoSuchFeed,
    VideoRoomNoSuchRoom,
)
from video.media.ice import check_sdp_candidates, rtc_configuration
from video.media.janus_client import JanusHandle, JanusSession, JanusTransport
from video.media.videoroom import VIDEOROOM, Subscriber, answer, end_reason, list_participants

logger = logging.getLogger(__name__)

EndReason = Literal[
    "stopped",
    "room_destroyed",
    "publisher_left",
    "hangup",
    "detached",
    "session_lost",
    "track_ended",
    "media_timeout",
    "max_duration",
    "connection_failed",
    "error",
]


class AnalysisConfig(msgspec.Struct, frozen=True, kw_only=True):
    """Everything a worker needs to subscribe; it crosses the process boundary (pickled)."""

    janus_url: str
    api_secret: str
    room_id: int
    pin: str
    feed_id: int
    """The customer's publisher id in the room."""
    allowed_networks: tuple[str, ...]
    """Where aiortc may have host candidates, e.g. ``("192.0.2.2/32",)``; required on purpose."""
    sample_fps: Annotated[float, Meta(ge=0.5, le=10.0)] = 3.0
    """Frames kept per second of video; kyc/ wants 2-5."""
    ice_servers: tuple[str, ...] = ()
    """STUN/TURN URLs for aiortc; none in tests, coturn in production if Janus is remote."""
    encoding: Literal["rgb24", "jpeg"] = "rgb24"
    """``rgb24``: raw pixels (lossless, 0.9 MB at 640x480); ``jpeg``: small, for evidence stills."""
    jpeg_quality: Annotated[int, Meta(ge=50, le=100)] = 90
    connect_timeout_s: Annotated[float, Meta(gt=0)] = 5.0
    """From subscribing to the first decoded frame, per attempt."""
    subscribe_attempts: Annotated[int, Meta(ge=1, le=5)] = 3
    media_timeout_s: Annotated[float, Meta(gt=0)] = 10.0
    """No frame for this long after the first one ends the analysis."""
    max_duration_s: Annotated[float, Meta(gt=0)] | None = None
    presence_check_s: Annotated[float, Meta(gt=0)] = 2.0
    """How often to check that the room and the feed still exist: Janus does not tell
    subscribers when a room is destroyed, so without this the peer would wait for the media timeout."""


class SampledFrame(msgspec.Struct, frozen=True, kw_only=True):
    """One kept frame: pixels and when it was seen, for kyc/'s face and liveness checks."""

    seq: int
    """0, 1, 2 ... in the order kept."""
    media_time_s: float
    """Position in the customer's stream (RTP clock), for liveness timing."""
    received_at: float
    """Wall-clock time (epoch seconds) the decoded frame reached the peer."""
    width: int
    height: int
    encoding: Literal["rgb24", "jpeg"]
    data: bytes

    def to_rgb(self) -> npt.NDArray[np.uint8]:
        """The frame as an ``(height, width, 3)`` RGB array."""
        if self.encoding == "rgb24":
            return np.frombuffer(self.data, dtype=np.uint8).reshape(self.height, self.width, 3)
        bgr = cv2.imdecode(np.frombuffer(self.data, dtype=np.uint8), cv2.IMREAD_COLOR)
        if bgr is None:
            raise MediaError("undecodable JPEG frame")
        return np.ascontiguousarray(bgr[:, :, ::-1])


class PeerStats(msgspec.Struct, kw_only=True):
    attempts: int = 0
    """Subscriptions made (more than one when the first never delivered video)."""
    frames_received: int = 0
    frames_sampled: int = 0
    subscribed_at: float | None = None
    first_frame_at: float | None = None
    ended_at: float | None = None


class PeerOutcome(msgspec.Struct, frozen=True, kw_only=True):
    """How an analysis ended; ``error`` is set only for ``reason == "error"``."""

    reason: EndReason
    stats: PeerStats
    error: str | None = None


class FrameSampler:
    """Keep frames ``1/fps`` apart in media time, tolerant of RTP timestamp jitter."""

    def __init__(self, fps: float) -> None:
        self.period = 1.0 / fps
        self._next_due: float | None = None

    def take(self, media_time_s: float) -> bool:
        slack = min(0.02, self.period / 4)
        due = self._next_due
        if due is None or abs(media_time_s - due) > self.period * 4:
            self._next_due = media_time_s + self.period  # first frame, or the clock jumped
            return True
        if media_time_s + slack >= due:
            self._next_due = due + self.period
            return True
        return False


def encode_frame(frame: VideoFrame, *, seq: int, config: AnalysisConfig) -> SampledFrame:
    """Convert one decoded frame to the configured encoding (the only pixel copy we make)."""
    rgb = frame.to_ndarray(format="rgb24")
    if config.encoding == "jpeg":
        ok, buffer = cv2.imencode(".jpg", rgb[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, config.jpeg_quality])
        if not ok:
            raise MediaError("JPEG encoding failed")
        data = buffer.tobytes()
    else:
        data = rgb.tobytes()
    return SampledFrame(
        seq=seq,
        media_time_s=float(frame.time or 0.0),
        received_at=time.time(),
        width=frame.width,
        height=frame.height,
        encoding=config.encoding,
        data=data,
    )


class AnalysisPeer:
    """One receive-only subscription; ``run()`` returns when the room, feed or caller ends it."""

    def __init__(self, config: AnalysisConfig, on_frame: Callable[[SampledFrame], Awaitable[None]]) -> None:
        self.config = config
        self._on_frame = on_frame
        self.stats = PeerStats()
        self._done: asyncio.Future[tuple[EndReason, str | None]] | None = None
        self._stop_reason: EndReason | None = None

    def stop(self, reason: EndReason = "stopped") -> None:
        """End the analysis (also between two subscription attempts)."""
        self._stop_reason = reason
        self._finish(reason)

    def _finish(self, reason: EndReason, error: str | None = None) -> None:
        if self._done is not None and not self._done.done():
            self._done.set_result((reason, error))

    async def run(self) -> PeerOutcome:
        """Subscribe, sample until something ends it; re-subscribe if the first frame never comes.

        A fresh aiortc subscription occasionally stalls (Janus reports ICE failed on its side
        although aiortc's checks succeed; seen about once in five right after a browser's
        publisher came up). A new subscription recovers, so up to ``subscribe_attempts``
        are made before giving up with ``media_timeout``.
        """
        transport = JanusTransport(self.config.janus_url, self.config.api_secret)
        reason: EndReason = "error"
        error: str | None = None
        try:
            session = await transport.create_session()
            try:
                presence = await session.attach(VIDEOROOM)
                for attempt in range(1, self.config.subscribe_attempts + 1):
                    self.stats.attempts = attempt
                    reason, error = await self._attempt(session, presence)
                    stalled = reason in {"media_timeout", "connection_failed", "hangup"}
                    retry = stalled and self.stats.first_frame_at is None
                    if not retry or self._stop_reason is not None or attempt == self.config.subscribe_attempts:
                        break
                    logger.warning("analysis peer: no video after attempt %d (%s); subscribing again", attempt, reason)
            finally:
                await session.destroy()
        except (MediaError, OSError, ValueError) as exc:
            reason, error = "error", f"{type(exc).__name__}: {exc}"
            logger.warning("analysis peer failed: %s", error)
        finally:
            await transport.aclose()
        self.stats.ended_at = time.time()
        return PeerOutcome(reason=reason, stats=self.stats, error=error)

    async def _attempt(self, session: JanusSession, presence: JanusHandle) -> tuple[EndReason, str | None]:
        """One subscription with its own PeerConnection, torn down whatever happens."""
        self._done = asyncio.get_running_loop().create_future()
        if self._stop_reason is not None:
            return self._stop_reason, None
        pc = RTCPeerConnection(rtc_configuration(self.config.ice_servers))
        tasks: list[asyncio.Task[None]] = []
        subscriber: Subscriber | None = None
        try:
            try:
                subscriber = await Subscriber.join(
                    session, self.config.room_id, pin=self.config.pin, feed_id=self.config.feed_id
                )
            except VideoRoomNoSuchRoom:
                return "room_destroyed", None
            except VideoRoomNoSuchFeed:
                return "publisher_left", None
            self.stats.subscribed_at = self.stats.subscribed_at or time.time()
            track = await self._negotiate(pc, subscriber)
            watchers = [self._consume(track), self._watch_events(subscriber), self._watch_room(presence)]
            if self.config.max_duration_s is not None:
                watchers.append(self._deadline(self.config.max_duration_s))
            tasks = [asyncio.create_task(self._guarded(watcher)) for watcher in watchers]
            return await self._done
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            await pc.close()
            if subscriber is not None:
                await subscriber.close()

    async def _guarded(self, watcher: Coroutine[Any, Any, None]) -> None:
        """A watcher that fails (e.g. the frame callback raised) ends the analysis with its error."""
        try:
            await watcher
        except Exception as exc:
            logger.exception("analysis peer task failed")
            self._finish("error", f"{type(exc).__name__}: {exc}")

    async def _negotiate(self, pc: RTCPeerConnection, subscriber: Subscriber) -> MediaStreamTrack:
        """Answer Janus's offer receive-only, with every m-line but the first video one inactive."""

        @pc.on("connectionstatechange")
        def _on_state() -> None:
            if pc.connectionState == "failed":
                self._finish("connection_failed", "ICE/DTLS connection failed")

        await pc.setRemoteDescription(RTCSessionDescription(sdp=subscriber.offer["sdp"], type="offer"))
        video = None
        for transceiver in pc.getTransceivers():
            if transceiver.kind == "video" and video is None:
                transceiver.direction = "recvonly"
                video = transceiver
            else:
                transceiver.direction = "inactive"
        if video is None:
            raise MediaError(f"feed {self.config.feed_id} publishes no video")
        await pc.setLocalDescription(await pc.createAnswer())
        local_sdp = pc.localDescription.sdp
        check_sdp_candidates(local_sdp, self.config.allowed_networks)
        if pc.getSenders() and any(sender.track is not None for sender in pc.getSenders()):
            raise MediaError("the analysis peer must never send media")
        await subscriber.start(answer(local_sdp))
        return video.receiver.track

    async def _consume(self, track: MediaStreamTrack) -> None:
        sampler = FrameSampler(self.config.sample_fps)
        timeout = self.config.connect_timeout_s
        while True:
            try:
                frame = await asyncio.wait_for(track.recv(), timeout)
            except TimeoutError:
                self._finish("media_timeout")
                return
            except MediaStreamError:
                self._finish("track_ended")
                return
            if not isinstance(frame, VideoFrame):
                continue
            if self.stats.first_frame_at is None:
                self.stats.first_frame_at = time.time()
                timeout = self.config.media_timeout_s
            self.stats.frames_received += 1
            if sampler.take(float(frame.time or 0.0)):
                sampled = encode_frame(frame, seq=self.stats.frames_sampled, config=self.config)
                self.stats.frames_sampled += 1
                await self._on_frame(sampled)

    async def _watch_events(self, subscriber: Subscriber) -> None:
        while True:
            try:
                event = await subscriber.next_event(timeout_s=None)
            except (JanusError, JanusTimeout, JanusUnavailable) as exc:
                self._finish("error", str(exc))
                return
            reason = end_reason(event, self.config.feed_id)
            if reason is not None:
                self._finish(reason)
                return

    async def _watch_room(self, handle: JanusHandle) -> None:
        while True:
            await asyncio.sleep(self.config.presence_check_s)
            try:
                participants = await list_participants(handle, self.config.room_id)
            except VideoRoomNoSuchRoom:
                self._finish("room_destroyed")
                return
            except (JanusError, JanusTimeout, JanusUnavailable) as exc:
                self._finish("error", str(exc))
                return
            if not any(p.id == self.config.feed_id and p.publisher for p in participants):
                self._finish("publisher_left")
                return

    async def _deadline(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        self._finish("max_duration")
