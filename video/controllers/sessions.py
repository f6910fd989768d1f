"""Live video sessions over HTTP and the signalling WebSocket (docs/video-sessions.md)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

from litestar import Controller, Request, Response, WebSocket, get, post, put, websocket
from litestar.connection import ASGIConnection
from litestar.di import NamedDependency
from litestar.exceptions import WebSocketDisconnect, WebSocketException
from litestar.params import FromPath, JSONBody
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED

from app import audit
from app.db import transaction
from app.errors import AppError, NotFound
from app.security import Principal, Role, principal_of, requires_role
from app.storage import blob_store
from kyc.tables import KycEvidence
from video import recordings, service
from video.hub import MediaUnavailable, VideoHub, to_json
from video.hub import Role as SessionRole
from video.schemas import Checklist, DecisionIn, QueueEntry, RecordingOut, SessionCreate, SessionOut, StillOut
from video.tables import VideoSession

_customer = requires_role(Role.customer)
_manager = requires_role(Role.account_manager)
_readers = requires_role(Role.customer, Role.account_manager, Role.admin)
_staff_readers = requires_role(Role.account_manager, Role.admin)
MAX_MESSAGE_BYTES = 64 * 1024
"""An SDP with candidates is a few kB; anything far larger is not signalling."""


def hub_of(connection: ASGIConnection[Any, Any, Any, Any]) -> VideoHub:
    hub: VideoHub = connection.app.state.video_hub
    return hub


class SessionController(Controller):
    path = "/api/video"
    tags = ["video"]

    @post("/sessions", operation_id="join_video_queue", guards=[_customer], status_code=HTTP_201_CREATED)
    async def join(
        self, data: JSONBody[SessionCreate], principal: NamedDependency[Principal], request: Request[Any, Any, Any]
    ) -> SessionOut:
        """Join the walk-in queue (or check in for a booked appointment), consenting to recording."""
        assert principal.customer_id is not None
        async with transaction():
            session = await service.start_session(principal.customer_id, data)
            out = await service.session_out(session)
        await hub_of(request).push_queue()
        return out

    @get("/sessions/{session_id:int}", operation_id="get_video_session", guards=[_readers])
    async def get_session(self, session_id: FromPath[int], principal: NamedDependency[Principal]) -> SessionOut:
        async with transaction():
            return await service.session_out(await service.visible_session(principal, session_id))

    @get("/queue", operation_id="video_queue", guards=[_staff_readers])
    async def queue(self) -> list[QueueEntry]:
        """Waiting customers, in the order they will be served (appointments due first)."""
        async with transaction():
            return await service.queue()

    @post(
        "/sessions/{session_id:int}/accept",
        operation_id="accept_video_session",
        guards=[_manager],
        status_code=HTTP_200_OK,
    )
    async def accept(
        self, session_id: FromPath[int], principal: NamedDependency[Principal], request: Request[Any, Any, Any]
    ) -> SessionOut:
        """Take the customer: the session's room is created and both sides may publish."""
        hub = hub_of(request)
        async with transaction():
            session = await service.accept(principal, session_id)
        try:
            await hub.open(session.id, session.case)
        except MediaUnavailable:
            async with transaction():  # give the customer back to the queue, nothing half-open
                returned = (
                    await VideoSession.update(
                        {
                            VideoSession.state: service.WAITING,
                            # an appointment stays with its manager; a walk-in is anyone's again
                            VideoSession.manager: session.manager if session.appointment is not None else None,
                            VideoSession.accepted_at: None,
                            VideoSession.node: "",
                            VideoSession.updated_at: service.now(),
                        }
                    )
                    .where((VideoSession.id == session.id) & (VideoSession.state == service.ACTIVE))
                    .returning(VideoSession.id)
                )
                if returned:  # not if the customer left meanwhile
                    await audit.record(
                        "video.session_returned",
                        "video_session",
                        session.id,
                        detail={"reason": "media_server_unavailable"},
                    )
            raise
        await hub.activate(session.id)
        await hub.push_state(session.id)
        await hub.push_queue()
        async with transaction():
            return await service.session_out(await service.visible_session(principal, session_id))

    @post(
        "/sessions/{session_id:int}/liveness",
        operation_id="start_video_liveness",
        guards=[_manager],
        status_code=HTTP_200_OK,
    )
    async def liveness(
        self, session_id: FromPath[int], principal: NamedDependency[Principal], request: Request[Any, Any, Any]
    ) -> SessionOut:
        """Start a liveness check: fresh prompts appear on the customer's screen now."""
        live = await _live_for_manager(request, principal, session_id)
        message = await live.analysis.start_liveness()
        await live.tell_both(message)
        async with transaction():
            return await service.session_out(await service.visible_session(principal, session_id))

    @put("/sessions/{session_id:int}/checklist", operation_id="set_video_checklist", guards=[_manager])
    async def checklist(
        self,
        session_id: FromPath[int],
        data: JSONBody[Checklist],
        principal: NamedDependency[Principal],
        request: Request[Any, Any, Any],
    ) -> SessionOut:
        async with transaction():
            session = await service.set_checklist(principal, await service.visible_session(principal, session_id), data)
            out = await service.session_out(session)
        await hub_of(request).push_state(session_id)
        return out

    @post(
        "/sessions/{session_id:int}/stills",
        operation_id="capture_video_still",
        guards=[_manager],
        status_code=HTTP_201_CREATED,
    )
    async def still(
        self, session_id: FromPath[int], principal: NamedDependency[Principal], request: Request[Any, Any, Any]
    ) -> StillOut:
        """Keep the customer's latest frame as evidence of the KYC case."""
        live = await _live_for_manager(request, principal, session_id)
        frame = live.analysis.latest_frame()
        if frame is None:
            raise service.NotActive("no video from the customer yet", code="no_video")
        async with transaction():
            return await service.store_still(session_id, live.case_id, frame, live.analysis.distance)

    @get("/sessions/{session_id:int}/stills/{evidence_id:int}", operation_id="get_video_still", guards=[_staff_readers])
    async def get_still(
        self, session_id: FromPath[int], evidence_id: FromPath[int], principal: NamedDependency[Principal]
    ) -> Response[bytes]:
        async with transaction():
            session = await service.visible_session(principal, session_id)
            row = (
                await KycEvidence.select(KycEvidence.blob_id)
                .where(
                    (KycEvidence.id == evidence_id) & (KycEvidence.case == session.case) & (KycEvidence.kind == "still")
                )
                .first()
            )
        if row is None or not row["blob_id"]:
            raise NotFound("no such still")
        return Response(blob_store().get("still", row["blob_id"]), media_type="image/jpeg")

    @get("/sessions/{session_id:int}/stills", operation_id="list_video_stills", guards=[_staff_readers])
    async def list_stills(self, session_id: FromPath[int], principal: NamedDependency[Principal]) -> list[StillOut]:
        async with transaction():
            session = await service.visible_session(principal, session_id)
            return await service.stills(session)

    @post(
        "/sessions/{session_id:int}/decision",
        operation_id="decide_video_session",
        guards=[_manager],
        status_code=HTTP_200_OK,
    )
    async def decision(
        self,
        session_id: FromPath[int],
        data: JSONBody[DecisionIn],
        principal: NamedDependency[Principal],
        request: Request[Any, Any, Any],
    ) -> SessionOut:
        """Approve or reject with a reason: completes the KYC case's review and ends the call."""
        async with transaction():
            session = await service.decide(principal, await service.visible_session(principal, session_id), data)
        await hub_of(request).end(session_id, "decided")
        async with transaction():
            return await service.session_out(await service.visible_session(principal, session.id))

    @post(
        "/sessions/{session_id:int}/end", operation_id="end_video_session", guards=[_readers], status_code=HTTP_200_OK
    )
    async def end(
        self, session_id: FromPath[int], principal: NamedDependency[Principal], request: Request[Any, Any, Any]
    ) -> SessionOut:
        async with transaction():
            session = await service.visible_session(principal, session_id)
        if principal.role != Role.customer and session.manager != principal.account_id:
            raise NotFound("no such video session")
        who = "customer_left" if principal.role == Role.customer else "manager_left"
        await hub_of(request).end(session_id, who)
        async with transaction():
            return await service.session_out(await service.visible_session(principal, session_id))

    @get("/sessions/{session_id:int}/recordings", operation_id="list_video_recordings", guards=[_staff_readers])
    async def list_recordings(
        self, session_id: FromPath[int], principal: NamedDependency[Principal]
    ) -> list[RecordingOut]:
        async with transaction():
            session = await service.visible_session(principal, session_id)
            return await recordings.recordings_of(session.id)

    @get("/recordings/{recording_id:int}", operation_id="get_video_recording", guards=[_staff_readers])
    async def recording(self, recording_id: FromPath[int], principal: NamedDependency[Principal]) -> Response[bytes]:
        """The WebM file (decrypted from the blob store); reading it is audited."""
        async with transaction():
            data = await recordings.read_recording(principal, recording_id)
        return Response(data, media_type="video/webm", headers={"Cache-Control": "private, no-store"})


async def _live_for_manager(request: Request[Any, Any, Any], principal: Principal, session_id: int) -> Any:
    async with transaction():
        session = await service.visible_session(principal, session_id)
    if session.state != service.ACTIVE or session.manager != principal.account_id:
        raise (
            service.NotActive(f"the session is {session.state}")
            if session.state != service.ACTIVE
            else NotFound("no such video session")
        )
    live = hub_of(request).live.get(session_id)
    if live is None:
        raise MediaUnavailable("this session's media is not held by this server")
    return live


def _same_origin(socket: WebSocket[Any, Any, Any]) -> bool:
    """Browsers send cookies with cross-site WebSocket handshakes: only our own pages may connect."""
    origin = socket.headers.get("origin")
    if origin is None:
        return True  # not a browser (API clients use bearer tokens)
    return urlsplit(origin).netloc == socket.headers.get("host", "")


async def _admit(socket: WebSocket[Any, Any, Any], session_id: int) -> tuple[SessionRole, VideoSession] | None:
    """Who this socket is in the session, or ``None`` after closing it with the reason."""
    principal = principal_of(socket)
    if not _same_origin(socket):
        await socket.close(code=4403, reason="cross-origin")
        return None
    try:
        async with transaction():
            session = await service.visible_session(principal, session_id)
    except NotFound:  # another customer's session (or none): refused like any non-participant
        await socket.close(code=4403, reason="not a participant of this session")
        return None
    role: SessionRole
    if principal.role == Role.customer and principal.customer_id == session.customer:
        role = "customer"
    elif principal.role == Role.account_manager and session.manager == principal.account_id:
        role = "manager"
    else:  # another customer, another manager, or a manager before accepting
        await socket.close(code=4403, reason="not a participant of this session")
        return None
    if session.state not in service.LIVE:
        await socket.close(code=4409, reason=f"session {session.state}")
        return None
    return role, session


def _socket_login(connection: ASGIConnection[Any, Any, Any, Any], _: Any) -> None:
    """``requires_login`` for the socket: an HTTP exception would close it as 4500 (server error)."""
    if not isinstance(connection.scope.get("user"), Principal):
        raise WebSocketException(detail="log in first", code=4401)


def _parse(raw: str) -> dict[str, Any] | None:
    if len(raw) > MAX_MESSAGE_BYTES:
        return None
    try:
        message = json.loads(raw)
    except ValueError:
        return None
    return message if isinstance(message, dict) else None


@websocket("/ws/video/sessions/{session_id:int}", guards=[_socket_login])
async def signalling(socket: WebSocket[Any, Any, Any], session_id: FromPath[int]) -> None:
    """The signalling channel of one participant (see docs/video-sessions.md)."""
    admitted = await _admit(socket, session_id)
    if admitted is None:
        return
    role, session = admitted
    hub = hub_of(socket)
    await socket.accept()

    async def send(message: dict[str, Any]) -> None:
        await socket.send_json(message)
        if message.get("type") == "ended":  # the session is over: the server closes (docs/video-sessions.md)
            await socket.close()

    async with transaction():
        out = await service.session_out(session)
    ice = [{"urls": url} for url in hub.link.ice_servers]
    await send(to_json({"type": "hello", "role": role, "session": out, "iceServers": ice}))
    await hub.join(session_id, role, send)
    try:
        while True:
            message = _parse(await socket.receive_text())
            if message is None:
                await send({"type": "error", "error": "bad_message", "message": "messages are JSON objects (<64 kB)"})
            elif message.get("type") == "leave":
                await hub.end(session_id, f"{role}_left")
                break
            elif (live := hub.live.get(session_id)) is None:
                await send({"type": "error", "error": "not_active", "message": "the session has not started"})
            else:
                try:
                    await live.handle(role, message)
                except AppError as exc:
                    await send({"type": "error", "error": exc.code, "message": exc.message})
                except Exception as exc:  # a media error must not kill the channel: the client may retry
                    await send({"type": "error", "error": "media_error", "message": f"{type(exc).__name__}: {exc}"})
    except WebSocketDisconnect:
        pass
    finally:
        await hub.leave(session_id, role, send)


CONTROLLERS: list[Any] = [SessionController, signalling]
