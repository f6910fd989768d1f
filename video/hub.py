"""The live side of video sessions in this app process: Janus rooms, signalling, analysis.

One ``VideoHub`` per app process (started by the app's lifespan). A session that a manager
accepts gets its own Janus session and VideoRoom room (random id, secret and PIN, recording
on); the customer and the manager each publish into it through the app's signalling
WebSocket and subscribe to each other, and the aiortc analysis peer (a worker process)
subscribes to the customer's video and feeds ``video.analysis``. Browsers never see Janus.

Sessions are pinned to the process that accepted them (``VideoSession.node``): a load
balancer routes a session's WebSockets by its id. A watchdog ends sessions whose
participant stayed away longer than the reconnect grace, that ran past their maximum
length, or whose Janus went away (both sides are told why).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Literal

import msgspec

from app.cpu import run_cpu
from app.db import transaction
from app.errors import AppError, Invalid
from app.jobs import JobRunner
from app.settings import Settings
from kyc import biometrics
from video import service
from video.analysis import SessionAnalysis
from video.media.analysis_peer import AnalysisConfig, SampledFrame
from video.media.analysis_worker import AnalysisWorker
from video.media.errors import JanusError, JanusTimeout, JanusUnavailable, MediaError
from video.media.janus_client import JanusSession, JanusTransport
from video.media.janus_process import load_dev_settings
from video.media.videoroom import (
    Publisher,
    RoomCredentials,
    Subscriber,
    VideoRoomAdmin,
    answer,
    new_room_credentials,
    offer,
)
from video.tables import VideoSession

logger = logging.getLogger(__name__)

Role = Literal["customer", "manager"]
Send = Callable[[dict[str, Any]], Awaitable[None]]
CONVERT_JOB = "video.convert_recordings"


class MediaUnavailable(AppError):
    status_code = 503
    code = "media_server_unavailable"


class JanusLink(msgspec.Struct, frozen=True, kw_only=True):
    """How the app reaches Janus: loopback API URL, API secret, room admin key, recordings root."""

    url: str
    api_secret: str
    room_admin_key: str
    recordings_root: str
    allowed_networks: tuple[str, ...]
    ice_servers: tuple[str, ...]

    @classmethod
    def from_settings(cls, settings: Settings) -> JanusLink:
        var = Path(settings.var_dir) / "janus"
        if settings.janus_api_secret:
            secret, admin_key = settings.janus_api_secret, settings.janus_room_admin_key
            root = settings.janus_recordings_root or str(var / "recordings")
        else:  # development: the secrets ``make run``'s Janus was configured with
            dev = load_dev_settings(var)
            secret, admin_key = dev.api_secret, dev.room_admin_key
            root = settings.janus_recordings_root or dev.recordings_root
        return cls(
            url=settings.janus_url or "http://127.0.0.1:8088/janus",
            api_secret=secret,
            room_admin_key=admin_key,
            recordings_root=root,
            allowed_networks=tuple(n.strip() for n in settings.video_allowed_networks.split(",") if n.strip()),
            ice_servers=tuple(u.strip() for u in settings.video_ice_servers.split(",") if u.strip()),
        )


def to_json(message: dict[str, Any]) -> dict[str, Any]:
    decoded: dict[str, Any] = json.loads(msgspec.json.encode(message))
    return decoded


class Participant:
    def __init__(self, role: Role) -> None:
        self.role = role
        self.send: Send | None = None
        self.publisher: Publisher | None = None
        self.subscriber: Subscriber | None = None
        self.publishing = False
        self.publishes = 0
        self.receiving = False
        """Whether Janus has the subscriber's PeerConnection up (``webrtcup``, no ``hangup`` since)."""
        self.away_since: float | None = time.monotonic()
        self.tasks: set[asyncio.Task[None]] = set()

    async def tell(self, message: dict[str, Any]) -> None:
        if self.send is not None:
            try:
                await self.send(to_json(message))
            except Exception:  # a closing socket: the watchdog handles absence
                logger.debug("could not send %s to the %s", message.get("type"), self.role)


class LiveSession:
    """One accepted session's media: its Janus session and room, both participants, analysis."""

    def __init__(
        self,
        hub: VideoHub,
        *,
        session_id: int,
        case_id: int,
        janus: JanusSession,
        admin: VideoRoomAdmin,
        room: RoomCredentials,
    ) -> None:
        self.hub = hub
        self.id = session_id
        self.case_id = case_id
        self.janus = janus
        self.admin = admin
        self.room = room
        self.people: dict[Role, Participant] = {"customer": Participant("customer"), "manager": Participant("manager")}
        self.started = time.monotonic()
        self.ended = False
        self.analysis = SessionAnalysis(session_id, case_id, self._from_analysis)
        self.worker: AnalysisWorker | None = None
        self._worker_task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    @staticmethod
    def other(role: Role) -> Role:
        return "manager" if role == "customer" else "customer"

    async def _from_analysis(self, message: dict[str, Any]) -> None:
        """Figures go to the manager; a liveness verdict to both (the customer's page shows it),
        the customer's copy without the detectors' reasons (no tuning hints for a spoofer)."""
        await self.people["manager"].tell(message)
        if message.get("type") == "liveness":
            challenges = [{k: v for k, v in c.items() if k != "detail"} for c in message.get("challenges", [])]
            await self.people["customer"].tell({**message, "challenges": challenges, "reason": ""})

    async def tell_both(self, message: dict[str, Any]) -> None:
        await asyncio.gather(*(p.tell(message) for p in self.people.values()))

    # --- connections ------------------------------------------------------------------------

    async def connected(self, role: Role) -> None:
        """A (re)connected participant: offer them the other side's media if it is up."""
        me = self.people[role]
        me.away_since = None
        other = self.people[self.other(role)]
        await me.tell({"type": "peer", "present": other.send is not None})
        await other.tell({"type": "peer", "present": True})
        if other.publishing:
            await self._offer_subscription(role)
        if role == "manager":
            await me.tell({"type": "analysis", **self.analysis.figures()})

    async def disconnected(self, role: Role, send: Send) -> None:
        me = self.people[role]
        if me.send is send:
            me.send = None
            me.away_since = time.monotonic()
            await self.people[self.other(role)].tell({"type": "peer", "present": False})

    # --- signalling ---------------------------------------------------------------------------

    async def handle(self, role: Role, message: dict[str, Any]) -> None:
        kind = message.get("type")
        me = self.people[role]
        if kind in ("publish", "restart"):
            sdp = message.get("sdp")
            if not isinstance(sdp, str) or not sdp.startswith("v=0"):
                raise Invalid("an SDP offer is needed", code="bad_message")
            reply = await self._publish(role, sdp, restart=kind == "restart")
            await me.tell({"type": "answer", "sdp": reply["sdp"]})
        elif kind == "subscribed":
            sdp = message.get("sdp")
            if me.subscriber is None or not isinstance(sdp, str):
                raise Invalid("no subscription offer is waiting for an answer", code="bad_message")
            await me.subscriber.start(answer(sdp))
        elif kind == "resubscribe":
            await self._offer_subscription(role, restart=True)
        elif kind == "candidate":
            target = me.publisher if message.get("target") == "publisher" else me.subscriber
            if target is not None:
                candidate = message.get("candidate")
                await target.trickle(candidate if isinstance(candidate, dict) else None)
        else:
            raise Invalid(f"unknown message type {kind!r}", code="bad_message")

    async def _publish(self, role: Role, sdp: str, *, restart: bool) -> dict[str, Any]:
        me = self.people[role]
        async with self._lock:
            if restart and me.publisher is not None:
                return await me.publisher.renegotiate(offer(sdp))
            if me.publisher is not None:  # a new connection after a reload: the old one is dead
                await self._drop_publisher(me)
            me.publisher = await Publisher.join(self.janus, self.room.room_id, pin=self.room.pin, display=role)
            me.publishes += 1
            jsep = await me.publisher.publish(
                offer(sdp), recording_base=f"{role}-{me.publishes}", room_secret=self.room.secret
            )
            self._watch(me, me.publisher)
            return jsep

    async def _drop_publisher(self, me: Participant) -> None:
        publisher, me.publisher, me.publishing = me.publisher, None, False
        if me.role == "customer":
            await self._stop_analysis()
        if publisher is not None:
            await publisher.close()

    def _watch(self, me: Participant, publisher: Publisher) -> None:
        """Follow the publisher's Janus events: media up → others subscribe; hangup → down."""

        async def pump() -> None:
            while not self.ended and me.publisher is publisher:
                try:
                    event = await publisher.handle.next_event(timeout_s=30.0)
                except JanusTimeout:
                    continue
                if event.janus == "webrtcup":
                    me.publishing = True
                    await self._offer_subscription(self.other(me.role))
                    if me.role == "customer":
                        self.analysis.media_up_at = self.analysis.media_up_at or time.time()
                        self._start_analysis(publisher.id)
                elif event.janus == "media" and me.role == "customer" and me.publishing:
                    # Video arrives again after a gap (a network blip): the analysis peer's own
                    # subscription may have died in it; start another (no-op while one runs).
                    if event.data.get("type") == "video" and event.data.get("receiving") is True:
                        self._start_analysis(publisher.id)
                elif event.janus in ("hangup", "detached", "session-lost"):
                    me.publishing = False
                    await self.people[self.other(me.role)].tell({"type": "peer", "present": me.send is not None})
                    if event.janus == "session-lost":
                        return

        task = asyncio.create_task(pump(), name=f"video-{self.id}-{me.role}-publisher")
        me.tasks.add(task)
        task.add_done_callback(me.tasks.discard)

    async def _offer_subscription(self, role: Role, *, restart: bool = False) -> None:
        """Subscribe ``role`` to the other participant's feed and send them Janus's offer.

        ``restart`` (the browser asked, after a network blip): an ICE restart of the current
        subscription if Janus still has its PeerConnection; once Janus has hung that up (its
        DTLS failed during the blip), only a new subscription can work. The offer says which
        it is: the browser answers a restart on its current connection, anything else on a
        new one (all Janus handles share one DTLS certificate, so the SDP cannot tell).
        """
        me, other = self.people[role], self.people[self.other(role)]
        if me.send is None or other.publisher is None or not other.publishing:
            return
        async with self._lock:
            current = me.subscriber
            restart = restart and current is not None and current.feed_id == other.publisher.id and me.receiving
            if restart and current is not None:
                jsep = await current.restart_ice()
            else:
                if current is not None:
                    await current.close()
                me.subscriber, me.receiving = None, False
                me.subscriber = await Subscriber.join(
                    self.janus, self.room.room_id, pin=self.room.pin, feed_id=other.publisher.id
                )
                self._watch_subscription(me, me.subscriber)
                jsep = me.subscriber.offer
        await me.tell({"type": "offer", "sdp": jsep["sdp"], "restart": restart})

    def _watch_subscription(self, me: Participant, subscriber: Subscriber) -> None:
        """Follow the subscriber's Janus events: ``webrtcup`` → receiving; ``hangup`` → not."""

        async def pump() -> None:
            while not self.ended and me.subscriber is subscriber:
                try:
                    event = await subscriber.handle.next_event(timeout_s=30.0)
                except JanusTimeout:
                    continue
                if me.subscriber is not subscriber:
                    return
                if event.janus == "webrtcup":
                    me.receiving = True
                elif event.janus in ("hangup", "detached", "session-lost"):
                    me.receiving = False
                    if event.janus != "hangup":
                        return

        task = asyncio.create_task(pump(), name=f"video-{self.id}-{me.role}-subscriber")
        me.tasks.add(task)
        task.add_done_callback(me.tasks.discard)

    # --- analysis ------------------------------------------------------------------------------

    def _start_analysis(self, feed_id: int) -> None:
        if self._worker_task is not None and not self._worker_task.done():
            return
        link = self.hub.link
        config = AnalysisConfig(
            janus_url=link.url,
            api_secret=link.api_secret,
            room_id=self.room.room_id,
            pin=self.room.pin,
            feed_id=feed_id,
            allowed_networks=link.allowed_networks,
            ice_servers=link.ice_servers,
            sample_fps=self.hub.settings.video_sample_fps,
            encoding="jpeg",
        )
        self.worker = AnalysisWorker(config)
        worker = self.worker

        async def consume() -> None:
            worker.start()
            async for item in worker.frames():
                frame = item.payload
                if isinstance(frame, SampledFrame):
                    self.analysis.feed(frame)
            outcome = worker.outcome
            attempts = outcome.stats.attempts if outcome is not None else 0
            log = logger.warning if attempts > 1 or (outcome is not None and outcome.reason == "error") else logger.info
            log("analysis of session %s ended after %s subscription(s): %s", self.id, attempts, outcome)

        self._worker_task = asyncio.create_task(consume(), name=f"video-{self.id}-analysis")

    async def _stop_analysis(self) -> None:
        worker, task = self.worker, self._worker_task
        self.worker, self._worker_task = None, None
        if worker is not None:
            await worker.stop()
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    # --- the end ----------------------------------------------------------------------------------

    async def close(self) -> None:
        """Leave everything cleanly: analysis stopped, handles detached, room destroyed
        (Janus closes the recordings), Janus session destroyed, tasks cancelled."""
        self.ended = True
        await self._stop_analysis()
        await self.analysis.close()
        for person in self.people.values():
            for task in list(person.tasks):
                task.cancel()
            for part in (person.subscriber, person.publisher):
                if part is not None:
                    with contextlib.suppress(MediaError):
                        await part.close()
        with contextlib.suppress(MediaError):
            await self.admin.destroy_room(self.room.room_id, self.room.secret)
        await self.janus.destroy()


class VideoHub:
    """Live sessions of this app process, the lobby of waiting customers, and the watchdog."""

    def __init__(self, settings: Settings, jobs: JobRunner | None) -> None:
        self.settings = settings
        self.jobs = jobs
        self.link = JanusLink.from_settings(settings)
        self.transport = JanusTransport(self.link.url, self.link.api_secret)
        self.live: dict[int, LiveSession] = {}
        self.lobby: dict[int, Send] = {}
        """Sockets of waiting customers (queue position updates)."""
        self.sockets: dict[tuple[int, Role], Send] = {}
        self._watchdog: asyncio.Task[None] | None = None
        self._teardowns: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._watchdog = asyncio.create_task(self._watch(), name="video-watchdog")

    async def stop(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watchdog
        for session_id in list(self.live):
            await self.end(session_id, "server_shutdown")
        if self._teardowns:
            await asyncio.gather(*self._teardowns, return_exceptions=True)
        await self.transport.aclose()

    async def media_ready(self) -> bool:
        try:
            await self.transport.info()
        except MediaError:
            return False
        return True

    async def readiness(self) -> tuple[str, bool]:
        """For ``/ready``: (what to report, whether it counts). Janus counts where it is
        configured explicitly (production); in development it is reported only."""
        ok = await self.media_ready()
        required = bool(self.settings.janus_url)
        return ("ok" if ok else f"unavailable at {self.link.url}"), required

    # --- opening ------------------------------------------------------------------------------

    async def open(self, session_id: int, case_id: int) -> LiveSession:
        """Create the session's Janus session and room (call after ``service.accept``)."""
        try:
            janus = await self.transport.create_session()
        except (JanusUnavailable, JanusTimeout, JanusError) as exc:
            raise MediaUnavailable("the media server is unavailable: please retry shortly") from exc
        try:
            admin = await VideoRoomAdmin.attach(janus, self.link.room_admin_key)
            room = new_room_credentials(Path(self.link.recordings_root), description=f"session {session_id}")
            await admin.create_room(room)
        except BaseException as exc:
            await janus.destroy()
            if isinstance(exc, MediaError):
                raise MediaUnavailable(f"the media server refused the room: {exc}") from exc
            raise
        live = LiveSession(self, session_id=session_id, case_id=case_id, janus=janus, admin=admin, room=room)
        self.live[session_id] = live
        async with transaction():
            await service.attach_room(session_id, room)
        return live

    # --- sockets --------------------------------------------------------------------------------

    async def join(self, session_id: int, role: Role, send: Send) -> None:
        old = self.sockets.get((session_id, role))
        self.sockets[(session_id, role)] = send
        if old is not None:
            with contextlib.suppress(Exception):
                await old({"type": "error", "error": "replaced", "message": "this session was opened elsewhere"})
        live = self.live.get(session_id)
        if live is not None:
            live.people[role].send = send
            await live.connected(role)
        elif role == "customer":
            self.lobby[session_id] = send

    async def leave(self, session_id: int, role: Role, send: Send) -> None:
        if self.sockets.get((session_id, role)) is send:
            del self.sockets[(session_id, role)]
        if self.lobby.get(session_id) is send:
            del self.lobby[session_id]
        live = self.live.get(session_id)
        if live is not None:
            await live.disconnected(role, send)

    async def activate(self, session_id: int) -> None:
        """The session was accepted: its waiting customer's socket becomes a participant."""
        send = self.lobby.pop(session_id, None)
        live = self.live.get(session_id)
        if live is not None and send is not None:
            live.people["customer"].send = send
            await live.connected("customer")

    async def push_state(self, session_id: int) -> None:
        """Send the session's current state to whoever of its participants is connected."""
        async with transaction():
            row = await VideoSession.objects().where(VideoSession.id == session_id).first()
            if row is None:
                return
            out = to_json({"type": "state", "session": await service.session_out(row)})
        for role in ("customer", "manager"):
            send = self.sockets.get((session_id, role))
            if send is not None:
                with contextlib.suppress(Exception):
                    await send(out)

    async def push_queue(self) -> None:
        """Queue positions moved: tell every waiting customer."""
        for session_id in list(self.lobby):
            await self.push_state(session_id)

    # --- ending ------------------------------------------------------------------------------------

    async def end(self, session_id: int, reason: str) -> None:
        """End in the database (if still live), close the media, tell both sides, queue the recording job."""
        async with transaction():
            row = await service.end(session_id, reason)  # a no-op when the caller already ended it
            out = to_json(
                {"type": "ended", "reason": row.end_reason or reason, "session": await service.session_out(row)}
            )
        live = self.live.pop(session_id, None)
        for role in ("customer", "manager"):
            send = self.sockets.get((session_id, role))
            if send is not None:
                with contextlib.suppress(Exception):
                    await send(out)
        self.lobby.pop(session_id, None)
        if live is not None:  # tear the media down in the background: nobody waits for it
            task = asyncio.create_task(self._teardown(live), name=f"video-{session_id}-teardown")
            self._teardowns.add(task)
            task.add_done_callback(self._teardowns.discard)
        await self.push_queue()

    async def _teardown(self, live: LiveSession) -> None:
        """Close the session's media (analysis worker, handles, room: Janus finalises the
        recordings), then queue the recording job."""
        try:
            await live.close()
        except Exception:
            logger.exception("closing the media of video session %s failed", live.id)
        if self.jobs is not None:
            try:
                await self.jobs.enqueue(CONVERT_JOB, {"session_id": live.id, "room_closed": True})
            except Exception:  # the job's sweep finds the pending recording anyway
                logger.warning("could not enqueue the recording job of session %s", live.id)

    async def _watch(self) -> None:
        grace = self.settings.video_reconnect_grace_s
        longest = self.settings.video_session_max_minutes * 60
        while True:
            await asyncio.sleep(1.0)
            now = time.monotonic()
            for session_id, live in list(self.live.items()):
                reason = None
                if live.janus.closed.is_set():
                    reason = "media_server_down"
                    await live.tell_both(
                        {"type": "error", "error": "media_server_unavailable", "message": "the media server went away"}
                    )
                elif now - live.started > longest:
                    reason = "max_duration"
                else:
                    for person in live.people.values():
                        if person.away_since is not None and now - person.away_since > grace:
                            reason = f"{person.role}_left"
                try:
                    if reason is not None:
                        await self.end(session_id, reason)
                except Exception:
                    logger.exception("could not end video session %s", session_id)


@contextlib.asynccontextmanager
async def lifespan(app: Any) -> Any:
    """Start this process's hub (and the analysis workers' fork server) with the app."""
    from video.media.analysis_worker import prewarm

    settings: Settings = app.state.settings
    hub = VideoHub(settings, app.state.jobs)
    app.state.video_hub = hub
    await asyncio.to_thread(prewarm, ("app.cli", "app.factory"))
    await hub.start()
    # Load the face models in the CPU pool now: the first verdict of the first session must
    # not wait for them (a few seconds per worker).
    warming = [asyncio.ensure_future(run_cpu(biometrics.warm)) for _ in range(settings.cpu_workers)]

    async def face_models() -> tuple[str, bool]:
        done = sum(1 for task in warming if task.done() and not task.cancelled() and task.exception() is None)
        status = "ok" if done == len(warming) else f"loading ({done}/{len(warming)} workers)"
        return status, bool(settings.janus_url)  # required where video is configured (as the media server)

    app.state.readiness["face_models"] = face_models
    app.state.readiness["media_server"] = hub.readiness
    try:
        yield
    finally:
        for task in warming:
            task.cancel()
        await hub.stop()
