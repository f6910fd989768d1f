"""Synthetic participants for the media tests and the benchmark: real aiortc peers talking to real Janus.

The "customer" and "manager" publish a pre-encoded VP8 WebM without re-encoding it,
so the load generator costs little CPU; a subscriber counts the frames it decodes, which is
what a browser would show. These are test tools, not the platform's analysis peer.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError

from video.media.ice import check_sdp_candidates, rtc_configuration
from video.media.janus_client import JanusSession
from video.media.videoroom import Publisher, Subscriber, answer, offer

FIXTURES = Path(os.environ.get("BRANCHLESS_FIXTURES") or Path(__file__).resolve().parents[4] / "shared" / "fixtures")


def make_vp8_webm(source: Path, target: Path, *, gop: int = 15, tone_hz: float = 440.0) -> Path:
    """Re-encode ``source`` once to VP8 (keyframe every ``gop`` frames) plus an Opus tone, in WebM.

    Frequent keyframes matter: a pass-through publisher cannot answer Janus's keyframe
    requests, so a new subscriber waits for the next keyframe in the file.
    """
    if target.exists():
        return target
    tmp = target.with_suffix(".part.webm")
    with av.open(str(source)) as src, av.open(str(tmp), "w", format="webm") as dst:
        in_video = src.streams.video[0]
        rate = in_video.average_rate or Fraction(30)
        video = dst.add_stream("libvpx", rate=rate)
        video.width, video.height, video.pix_fmt = in_video.width, in_video.height, "yuv420p"
        video.bit_rate = 1_000_000
        video.options = {"deadline": "realtime", "cpu-used": "8", "g": str(gop), "keyint_min": str(gop)}
        audio = dst.add_stream("libopus", rate=48000)
        audio.layout = "mono"
        duration = float(in_video.frames / rate) if in_video.frames else 6.0
        for frame in src.decode(in_video):
            frame.pict_type = av.video.frame.PictureType.NONE
            for packet in video.encode(frame.reformat(format="yuv420p")):
                dst.mux(packet)
        dst.mux(video.encode(None))
        samples, chunk = int(48000 * duration), 960
        for start in range(0, samples, chunk):
            t = (np.arange(start, start + chunk) / 48000.0).astype(np.float32)
            tone = (0.2 * np.sin(2 * math.pi * tone_hz * t)).astype(np.float32).reshape(1, -1)
            frame = av.AudioFrame.from_ndarray(tone, format="flt", layout="mono")
            frame.sample_rate, frame.pts = 48000, start
            for packet in audio.encode(frame):
                dst.mux(packet)
        dst.mux(audio.encode(None))
    tmp.rename(target)
    return target


class LoopingPacketTrack(MediaStreamTrack):
    """Plays one stream of a file as pre-encoded packets, in real time, looping with rising timestamps.

    aiortc's ``MediaPlayer(decode=False, loop=True)`` restarts timestamps at each loop and then
    stops pacing (it sends the next pass as fast as it can read), which a receiver sees as a
    burst of stale frames; a long benchmark needs a steady 30 fps, so the packets (a few MB)
    are held in memory and re-stamped on every pass.
    """

    def __init__(self, path: Path, kind: str) -> None:
        super().__init__()
        self.kind = kind
        with av.open(str(path)) as container:
            stream = container.streams.video[0] if kind == "video" else container.streams.audio[0]
            self._time_base = stream.time_base or Fraction(1, 1000)
            packets = [(p.pts, bytes(p), p.is_keyframe) for p in container.demux(stream) if p.pts is not None]
        if not packets:
            raise ValueError(f"no {kind} packets in {path}")
        first = packets[0][0]
        step = packets[1][0] - first if len(packets) > 1 else 33
        self._packets = [(pts - first, data, key) for pts, data, key in packets]
        self._period = self._packets[-1][0] + step
        self._index = 0
        self._loops = 0
        self._start: float | None = None

    async def recv(self) -> av.Packet:
        if self.readyState != "live":
            raise MediaStreamError
        pts_rel, data, keyframe = self._packets[self._index]
        pts = pts_rel + self._loops * self._period
        self._index += 1
        if self._index == len(self._packets):
            self._index, self._loops = 0, self._loops + 1
        if self._start is None:
            self._start = time.monotonic()
        delay = self._start + float(pts * self._time_base) - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        packet = av.Packet(data)
        packet.pts = packet.dts = pts
        packet.time_base = self._time_base
        packet.is_keyframe = keyframe
        return packet


class SyntheticPublisher:
    """A participant publishing a WebM file's audio and video into the room, without re-encoding."""

    def __init__(self, publisher: Publisher, pc: RTCPeerConnection) -> None:
        self.publisher = publisher
        self.pc = pc

    @property
    def feed_id(self) -> int:
        return self.publisher.id

    @classmethod
    async def start(
        cls,
        session: JanusSession,
        room_id: int,
        *,
        pin: str,
        display: str,
        media: Path,
        allowed_networks: tuple[str, ...],
        recording_base: str | None = None,
        room_secret: str | None = None,
    ) -> SyntheticPublisher:
        publisher = await Publisher.join(session, room_id, pin=pin, display=display)
        pc = RTCPeerConnection(rtc_configuration())
        for kind in ("audio", "video"):
            pc.addTransceiver(LoopingPacketTrack(media, kind), direction="sendonly")
        await pc.setLocalDescription(await pc.createOffer())
        check_sdp_candidates(pc.localDescription.sdp, allowed_networks)
        jsep = await publisher.publish(
            offer(pc.localDescription.sdp), recording_base=recording_base, room_secret=room_secret
        )
        await pc.setRemoteDescription(RTCSessionDescription(sdp=jsep["sdp"], type="answer"))
        return cls(publisher, pc)

    async def wait_webrtcup(self, timeout_s: float = 10.0) -> float:
        """Seconds until Janus reports the PeerConnection up."""
        started = time.monotonic()
        await self.publisher.handle.wait_for("webrtcup", timeout_s)
        return time.monotonic() - started

    async def close(self) -> None:
        await self.pc.close()
        await self.publisher.close()


class CountingSubscriber:
    """Subscribes to a feed (audio and video) and counts decoded video frames, like a browser tile."""

    def __init__(self, subscriber: Subscriber, pc: RTCPeerConnection) -> None:
        self.subscriber = subscriber
        self.pc = pc
        self.frames = 0
        self.audio_frames = 0
        self.first_frame_at: float | None = None
        self.last_frame_at: float | None = None
        self.size: tuple[int, int] | None = None
        self.attempts = 1
        self._tasks: list[asyncio.Task[None]] = []

    @classmethod
    async def start(
        cls,
        session: JanusSession,
        room_id: int,
        *,
        pin: str,
        feed_id: int,
        allowed_networks: tuple[str, ...],
        first_frame_timeout_s: float = 5.0,
        attempts: int = 3,
    ) -> CountingSubscriber:
        """Subscribe and wait for the first frame; subscribe again if it never comes.

        A fresh aiortc subscription occasionally stalls (see ``AnalysisPeer.run``); like the
        analysis peer, a test viewer re-subscribes, and reports how many attempts it took.
        """
        for attempt in range(1, attempts + 1):
            self = await cls._subscribe(session, room_id, pin=pin, feed_id=feed_id, allowed_networks=allowed_networks)
            self.attempts = attempt
            deadline = time.monotonic() + first_frame_timeout_s
            while self.first_frame_at is None and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            if self.first_frame_at is not None or attempt == attempts:
                return self
            await self.close()
        raise AssertionError("unreachable")

    @classmethod
    async def _subscribe(
        cls, session: JanusSession, room_id: int, *, pin: str, feed_id: int, allowed_networks: tuple[str, ...]
    ) -> CountingSubscriber:
        subscriber = await Subscriber.join(session, room_id, pin=pin, feed_id=feed_id)
        pc = RTCPeerConnection(rtc_configuration())
        await pc.setRemoteDescription(RTCSessionDescription(sdp=subscriber.offer["sdp"], type="offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        check_sdp_candidates(pc.localDescription.sdp, allowed_networks)
        await subscriber.start(answer(pc.localDescription.sdp))
        self = cls(subscriber, pc)
        for transceiver in pc.getTransceivers():
            self._tasks.append(asyncio.create_task(self._count(transceiver.receiver.track)))
        return self

    async def _count(self, track: object) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()  # type: ignore[attr-defined]
                if isinstance(frame, av.VideoFrame):
                    now = time.monotonic()
                    self.first_frame_at = self.first_frame_at or now
                    self.last_frame_at = now
                    self.frames += 1
                    self.size = (frame.width, frame.height)
                else:
                    self.audio_frames += 1

    def reset(self) -> None:
        self.frames, self.audio_frames, self.first_frame_at = 0, 0, None

    def fps(self) -> float:
        if self.first_frame_at is None or self.last_frame_at is None or self.frames < 2:
            return 0.0
        return (self.frames - 1) / max(1e-6, self.last_frame_at - self.first_frame_at)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.pc.close()
        await self.subscriber.close()
