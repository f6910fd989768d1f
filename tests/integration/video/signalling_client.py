"""A synthetic participant that speaks the app's signalling protocol, as a browser page does.

It connects to ``/ws/video/sessions/{id}`` with the page session cookie, publishes a
pre-encoded VP8 WebM with aiortc (no re-encoding: a cheap load generator), answers the
subscription offers the app sends and counts the frames it decodes, like a video tile.
Used by the session scenarios and the benchmark; it never talks to Janus directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from pathlib import Path
from typing import Any

import av
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from app.middleware import SESSION_COOKIE
from tests.integration.video.media_peers import LoopingPacketTrack
from video.media.ice import check_sdp_candidates, rtc_configuration


class SignallingParticipant:
    def __init__(self, base: str, session_id: int, cookie: str, media: Path, allowed: tuple[str, ...]) -> None:
        self.url = base.replace("http://", "ws://") + f"/ws/video/sessions/{session_id}"
        self.origin = base
        self.cookie = cookie
        self.media = media
        self.allowed = allowed
        self.messages: list[dict[str, Any]] = []
        self.ws: ClientConnection | None = None
        self.pub: RTCPeerConnection | None = None
        self.sub: RTCPeerConnection | None = None
        self.frames = 0
        self.audio_frames = 0
        self.first_frame_at: float | None = None
        self.last_frame_at: float | None = None
        self.window: tuple[int, float] | None = None
        self.closed_code: int | None = None
        self.refused_status: int | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._new = asyncio.Event()

    async def open(self) -> None:
        headers = {"Cookie": f"{SESSION_COOKIE}={self.cookie}", "Origin": self.origin}
        try:
            self.ws = await connect(self.url, additional_headers=headers, max_size=2**20)
        except InvalidStatus as exc:  # refused at the handshake (not a participant, ...)
            self.refused_status = exc.response.status_code
            self.messages.append({"type": "_closed", "error": f"HTTP {self.refused_status}"})
            return
        self._tasks.append(asyncio.create_task(self._read()))

    async def _read(self) -> None:
        assert self.ws is not None
        try:
            async for raw in self.ws:
                message = json.loads(raw)
                self.messages.append(message)
                self._new.set()
                kind = message.get("type")
                if kind == "offer":
                    await self._subscribe(message["sdp"])
                elif kind == "answer" and self.pub is not None:
                    await self.pub.setRemoteDescription(RTCSessionDescription(sdp=message["sdp"], type="answer"))
                elif (kind == "state" and message["session"]["state"] == "active" and self.pub is None) or (
                    kind == "hello" and message["session"]["state"] == "active" and self.pub is None
                ):
                    await self.publish()
        except Exception as exc:  # closed by the server: keep its code for the test
            self.messages.append({"type": "_closed", "error": repr(exc)})
        finally:
            if self.ws is not None:
                self.closed_code = self.ws.close_code
            self._new.set()

    async def send(self, message: dict[str, Any]) -> None:
        assert self.ws is not None
        await self.ws.send(json.dumps(message))

    async def publish(self) -> None:
        self.pub = RTCPeerConnection(rtc_configuration())
        for kind in ("audio", "video"):
            self.pub.addTransceiver(LoopingPacketTrack(self.media, kind), direction="sendonly")
        await self.pub.setLocalDescription(await self.pub.createOffer())
        check_sdp_candidates(self.pub.localDescription.sdp, self.allowed)
        await self.send({"type": "publish", "sdp": self.pub.localDescription.sdp})

    async def _subscribe(self, sdp: str) -> None:
        if self.sub is not None:
            await self.sub.close()
        self.sub = RTCPeerConnection(rtc_configuration())
        self.sub.on("track", lambda track: self._tasks.append(asyncio.create_task(self._count(track))))
        await self.sub.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        await self.sub.setLocalDescription(await self.sub.createAnswer())
        await self.send({"type": "subscribed", "sdp": self.sub.localDescription.sdp})

    async def _count(self, track: Any) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                if isinstance(frame, av.VideoFrame):
                    now = time.monotonic()
                    self.first_frame_at = self.first_frame_at or now
                    self.last_frame_at = now
                    self.frames += 1
                else:
                    self.audio_frames += 1

    def start_window(self) -> None:
        self.window = (self.frames, time.monotonic())

    def window_fps(self) -> float:
        if self.window is None:
            return 0.0
        frames, since = self.window
        return (self.frames - frames) / max(1e-6, time.monotonic() - since)

    async def wait_for(self, predicate: Any, timeout_s: float) -> dict[str, Any]:
        """The first message (seen so far or arriving) for which ``predicate`` is true."""
        deadline = time.monotonic() + timeout_s
        while True:
            for message in self.messages:
                if predicate(message):
                    return message
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                kinds = [m.get("type") for m in self.messages]
                raise TimeoutError(f"no such message within {timeout_s} s; got {kinds[-20:]}")
            self._new.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._new.wait(), remaining)

    async def wait_frames(self, timeout_s: float) -> float | None:
        deadline = time.monotonic() + timeout_s
        while self.first_frame_at is None and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        return self.first_frame_at

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for pc in (self.pub, self.sub):
            if pc is not None:
                await pc.close()
        if self.ws is not None:
            await self.ws.close()
