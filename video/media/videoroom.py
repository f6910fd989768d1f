"""The Janus VideoRoom plugin, typed: rooms per KYC session, publishers and subscribers.

A room is created per video session with its own random secret (to destroy or edit it)
and PIN (to join it); both stay on the server. Creating rooms also needs the plugin's
``admin_key``. Browsers never talk to Janus: the signalling layer calls these methods
and relays only SDP and ICE candidates.
"""

from __future__ import annotations

import contextlib
import secrets
from pathlib import Path
from typing import Any, Literal

import msgspec

from video.media.errors import JanusError, JanusTimeout, JanusUnavailable
from video.media.janus_client import JanusEvent, JanusHandle, JanusSession, Json

VIDEOROOM = "janus.plugin.videoroom"
_MAX_ROOM_ID = 2**52
"""Room and feed ids travel as JSON numbers; below 2**53 they survive JavaScript intact."""


class RoomCredentials(msgspec.Struct, frozen=True, kw_only=True):
    """What the server must keep to use and later destroy a room; never sent to a browser."""

    room_id: int
    secret: str
    pin: str
    rec_dir: str
    description: str = ""


class StreamInfo(msgspec.Struct, frozen=True, kw_only=True):
    """One published m-line as Janus describes it."""

    type: Literal["audio", "video", "data"]
    mindex: int
    mid: str
    codec: str | None = None
    disabled: bool = False


class PublisherInfo(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    display: str | None = None
    streams: list[StreamInfo] = []


class Participant(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    display: str | None = None
    publisher: bool = False
    talking: bool | None = None


class SubscriptionStream(msgspec.Struct, frozen=True, kw_only=True):
    """One m-line of a subscription: our ``mid`` and which publisher stream feeds it."""

    mindex: int
    mid: str
    type: Literal["audio", "video", "data"]
    feed_id: int | None = None
    feed_mid: str | None = None
    feed_display: str | None = None


def new_room_credentials(recordings_root: Path, *, description: str = "") -> RoomCredentials:
    """Fresh random room id, secret and PIN, and the room's own recordings folder (created)."""
    room_id = secrets.randbelow(_MAX_ROOM_ID - 1) + 1
    rec_dir = recordings_root.resolve() / f"room-{room_id}"
    rec_dir.mkdir(parents=True, exist_ok=True)
    return RoomCredentials(
        room_id=room_id,
        secret=secrets.token_urlsafe(24),
        pin=secrets.token_urlsafe(12),
        rec_dir=str(rec_dir),
        description=description,
    )


def _publishers(data: Json) -> list[PublisherInfo]:
    return msgspec.convert(data.get("publishers", []), list[PublisherInfo], strict=False)


def offer(sdp: str) -> Json:
    return {"type": "offer", "sdp": sdp}


def answer(sdp: str) -> Json:
    return {"type": "answer", "sdp": sdp}


async def list_participants(handle: JanusHandle, room_id: int) -> list[Participant]:
    """Participants of a room (publishers or not); ``VideoRoomNoSuchRoom`` once it is destroyed.

    Needs no secret: it is how a subscriber learns that the room or its feed is gone, since
    Janus does not tell subscribers when a room is destroyed.
    """
    data = (await handle.request({"request": "listparticipants", "room": room_id})).data
    return msgspec.convert(data.get("participants", []), list[Participant], strict=False)


class VideoRoomAdmin:
    """Room management on a handle of the app's own (not a participant's)."""

    def __init__(self, handle: JanusHandle, admin_key: str) -> None:
        self.handle = handle
        self._admin_key = admin_key

    @classmethod
    async def attach(cls, session: JanusSession, admin_key: str) -> VideoRoomAdmin:
        return cls(await session.attach(VIDEOROOM), admin_key)

    async def create_room(
        self,
        room: RoomCredentials,
        *,
        publishers: int = 2,
        bitrate: int = 1_000_000,
        record: bool = True,
        videocodec: str = "vp8",
        audiocodec: str = "opus",
        fir_freq: int = 10,
    ) -> None:
        """A private, PIN-protected, recorded room; recording cannot be switched off by participants."""
        await self.handle.request(
            {
                "request": "create",
                "admin_key": self._admin_key,
                "room": room.room_id,
                "permanent": False,
                "description": room.description or f"session {room.room_id}",
                "secret": room.secret,
                "pin": room.pin,
                "is_private": True,
                "publishers": publishers,
                "bitrate": bitrate,
                "fir_freq": fir_freq,
                "videocodec": videocodec,
                "audiocodec": audiocodec,
                "record": record,
                "rec_dir": room.rec_dir,
                "lock_record": True,
                "notify_joining": True,
            }
        )

    async def destroy_room(self, room_id: int, secret: str) -> None:
        """Destroy the room: Janus kicks everyone (subscribers get ``destroyed``) and closes recordings."""
        await self.handle.request({"request": "destroy", "room": room_id, "secret": secret, "permanent": False})

    async def exists(self, room_id: int) -> bool:
        return bool((await self.handle.request({"request": "exists", "room": room_id})).data.get("exists"))

    async def list_participants(self, room_id: int) -> list[Participant]:
        return await list_participants(self.handle, room_id)

    async def kick(self, room_id: int, secret: str, participant_id: int) -> None:
        await self.handle.request({"request": "kick", "room": room_id, "secret": secret, "id": participant_id})


class _Participant:
    """Shared by publishers and subscribers: one handle, events, leave/detach."""

    def __init__(self, handle: JanusHandle, room_id: int) -> None:
        self.handle = handle
        self.room_id = room_id

    async def trickle(self, candidate: Json | None) -> None:
        """Relay a browser's ICE candidate (``None``: end of candidates)."""
        await self.handle.trickle(candidate)

    async def next_event(self, timeout_s: float | None = None) -> JanusEvent:
        return await self.handle.next_event(timeout_s)

    async def close(self) -> None:
        """Leave and detach, tolerating a room or session that is already gone."""
        with contextlib.suppress(JanusError, JanusTimeout, JanusUnavailable):
            await self.handle.request({"request": "leave"}, timeout_s=5.0)
        with contextlib.suppress(JanusError, JanusTimeout, JanusUnavailable):
            await self.handle.detach()


class Publisher(_Participant):
    """A participant who sends media (customer, manager). ``publishers`` is who was live at join."""

    def __init__(self, handle: JanusHandle, room_id: int, data: Json) -> None:
        super().__init__(handle, room_id)
        self.id = int(data["id"])
        self.private_id = int(data.get("private_id", 0))
        self.publishers = _publishers(data)

    @classmethod
    async def join(
        cls, session: JanusSession, room_id: int, *, pin: str, display: str, participant_id: int | None = None
    ) -> Publisher:
        handle = await session.attach(VIDEOROOM)
        body: Json = {"request": "join", "ptype": "publisher", "room": room_id, "pin": pin, "display": display}
        if participant_id is not None:
            body["id"] = participant_id
        try:
            response = await handle.request(body)
        except BaseException:
            await handle.detach()
            raise
        return cls(handle, room_id, response.data)

    async def publish(
        self,
        jsep_offer: Json,
        *,
        recording_base: str | None = None,
        room_secret: str | None = None,
        descriptions: dict[str, str] | None = None,
    ) -> Json:
        """Send the publisher's SDP offer; returns Janus's SDP answer.

        ``recording_base`` names the recording files (``BASE-video-1.mjr`` ...) instead of
        Janus's ``videoroom-ROOM-user-ID-TIME``; rooms lock recording, so it needs the room secret.
        """
        body: Json = {"request": "publish"}
        if recording_base is not None:
            if "/" in recording_base or recording_base.startswith("."):
                raise ValueError("recording_base is a file name inside the room's rec_dir, not a path")
            if room_secret is None:
                raise ValueError("naming the recording needs the room secret (recording is locked)")
            body["filename"] = recording_base
            body["secret"] = room_secret
        if descriptions:
            body["descriptions"] = [{"mid": mid, "description": text} for mid, text in descriptions.items()]
        response = await self.handle.request(body, jsep=jsep_offer, timeout_s=20.0)
        if response.jsep is None:
            raise JanusError(0, "publish answered without an SDP answer")
        return response.jsep

    async def renegotiate(self, jsep_offer: Json) -> Json:
        """A new offer from the publisher (e.g. an ICE restart after a network blip)."""
        response = await self.handle.request({"request": "configure"}, jsep=jsep_offer, timeout_s=20.0)
        if response.jsep is None:
            raise JanusError(0, "configure answered without an SDP answer")
        return response.jsep

    async def request_keyframe(self) -> None:
        await self.handle.request({"request": "configure", "keyframe": True})

    async def unpublish(self) -> None:
        await self.handle.request({"request": "unpublish"})


class Subscriber(_Participant):
    """A receive-only subscription to one publisher's streams; Janus makes the offer."""

    def __init__(self, handle: JanusHandle, room_id: int, feed_id: int, data: Json, jsep: Json) -> None:
        super().__init__(handle, room_id)
        self.feed_id = feed_id
        self.offer = jsep
        self.streams = msgspec.convert(data.get("streams", []), list[SubscriptionStream], strict=False)

    @classmethod
    async def join(
        cls,
        session: JanusSession,
        room_id: int,
        *,
        pin: str,
        feed_id: int,
        mids: list[str] | None = None,
        private_id: int | None = None,
    ) -> Subscriber:
        """Subscribe to ``feed_id`` (all its streams, or only ``mids``); ``.offer`` holds Janus's SDP."""
        handle = await session.attach(VIDEOROOM)
        streams: list[dict[str, Any]] = [{"feed": feed_id, "mid": mid} for mid in mids] if mids else [{"feed": feed_id}]
        body: Json = {"request": "join", "ptype": "subscriber", "room": room_id, "pin": pin, "streams": streams}
        if private_id is not None:
            body["private_id"] = private_id
        try:
            response = await handle.request(body, timeout_s=20.0)
            if response.jsep is None:
                raise JanusError(0, "subscription answered without an SDP offer")
        except BaseException:
            await handle.detach()
            raise
        return cls(handle, room_id, feed_id, response.data, response.jsep)

    async def start(self, jsep_answer: Json) -> None:
        """Send our SDP answer; media flows once ICE and DTLS complete (``webrtcup`` event)."""
        await self.handle.request({"request": "start"}, jsep=jsep_answer, timeout_s=20.0)

    async def restart_ice(self) -> Json:
        """Ask Janus for a fresh offer with new ICE credentials; answer it with ``start``."""
        response = await self.handle.request({"request": "configure", "restart": True}, timeout_s=20.0)
        if response.jsep is None:
            raise JanusError(0, "ICE restart answered without an SDP offer")
        self.offer = response.jsep
        return response.jsep


ParticipationEnd = Literal["session_lost", "hangup", "detached", "room_destroyed", "publisher_left"]


def end_reason(event: JanusEvent, feed_id: int | None = None) -> ParticipationEnd | None:
    """Why an event ends a participation (``None`` if it does not): room gone, feed gone, hangup."""
    data = event.data
    if event.janus == "session-lost":
        return "session_lost"
    if event.janus == "hangup":
        return "hangup"
    if event.janus == "detached":
        return "detached"
    if data.get("videoroom") == "destroyed":
        return "room_destroyed"
    if feed_id is not None and feed_id in (data.get("unpublished"), data.get("leaving")):
        return "publisher_left"
    return None
