"""Pages of video/: the customer's live video page and the account manager's console.

The pages render a shell and the session as it is now; everything that changes
(joining, the queue, the call, the checklist, the decision) goes through the JSON
API (``/api/video/...``) and the signalling WebSocket from ``/static/video-call.js``,
so every rule is enforced once, in the service.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Controller, Request, get
from litestar.params import FromPath
from litestar.response import Template

from app.db import transaction
from app.security import Principal, Role, principal_of, requires_role
from app.settings import get_settings
from app.web import Panel, home_panel
from video import service
from video.tables import VideoSession

LIVE_STATES = ("waiting", "active")
PURPOSES = {"loan": "贷款 · Loan", "claim": "理赔 · Insurance claim", "identity": "身份核验 · Identity check"}


class VideoPages(Controller):
    include_in_schema = False

    @get("/video", operation_id="video_page", guards=[requires_role(Role.customer)])
    async def video_page(self, request: Request[Any, Any, Any]) -> Template:
        """Device check, recording consent, the queue, the call and its outcome (mobile first)."""
        days = get_settings().video_recording_retention_days
        return Template(
            "video_session.html",
            context={
                "me": principal_of(request),
                "retention_days": days,
                "retention_years": max(1, round(days / 365)),
                "purposes": PURPOSES,
            },
        )

    @get("/console", operation_id="video_console_page", guards=[requires_role(Role.account_manager)])
    async def console_page(self, request: Request[Any, Any, Any]) -> Template:
        """The live queue of waiting customers (polled), each with an Accept button."""
        return Template("console.html", context={"me": principal_of(request), "purposes": PURPOSES})

    @get(
        "/console/sessions/{session_id:int}",
        operation_id="video_console_session_page",
        guards=[requires_role(Role.account_manager, Role.admin)],
    )
    async def console_session_page(self, session_id: FromPath[int], request: Request[Any, Any, Any]) -> Template:
        """The call as its manager runs it; afterwards (and for admins) the record: decision, checklist,
        stills and the recordings."""
        me = principal_of(request)
        async with transaction():
            session = await service.visible_session(me, session_id)
            out: dict[str, Any] = msgspec.to_builtins(await service.session_out(session))
            out["stills"] = msgspec.to_builtins(await service.stills(session))
        state = out.get("state")
        mine = me.role == Role.account_manager and out.get("managerId") == me.account_id
        return Template(
            "console_session.html",
            context={
                "me": me,
                "session": out,
                "purposes": PURPOSES,
                "live": state in LIVE_STATES,
                "can_run": mine and state == "active",
                "can_accept": me.role == Role.account_manager and state == "waiting",
            },
        )


@home_panel(Role.customer)
async def video_panel(me: Principal) -> Panel:
    live = (
        await VideoSession.select(VideoSession.state, VideoSession.purpose)
        .where((VideoSession.customer == me.customer_id) & VideoSession.state.is_in(list(LIVE_STATES)))
        .first()
    )
    rows = [["Talk to an account manager · 视频面谈", "join the queue"]]
    if live is not None:
        purpose = PURPOSES.get(live["purpose"], live["purpose"])
        rows = [["Your video session · 视频面谈", f"{live['state']} ({purpose})"]]
    return Panel("Live video · 视频服务", [], rows, links=["/video"])


@home_panel(Role.account_manager)
async def video_queue_panel(me: Principal) -> Panel:
    waiting = await VideoSession.count().where(VideoSession.state == "waiting")
    mine = await VideoSession.count().where((VideoSession.state == "active") & (VideoSession.manager == me.account_id))
    return Panel(
        "Live video queue · 视频排队",
        [],
        [["Open the console · 打开工作台", f"{waiting} waiting"], ["My calls in progress", str(mine)]],
        links=["/console"],
    )


@home_panel(Role.account_manager, Role.admin)
async def recent_video_sessions(me: Principal) -> Panel:
    rows = (
        await VideoSession.select(
            VideoSession.id,
            VideoSession.purpose,
            VideoSession.state,
            VideoSession.end_reason,
            VideoSession.decision,
            VideoSession.recording_state,
            VideoSession.ended_at,
        )
        .where(VideoSession.state.is_in(["ended", "cancelled"]))
        .order_by(VideoSession.id, ascending=False)
        .limit(10)
    )
    return Panel(
        "Recent video sessions",
        ["Session", "Ended", "Outcome", "Recording"],
        [
            [
                f"#{r['id']} {r['purpose']}",
                r["ended_at"].strftime("%m-%d %H:%M") if r["ended_at"] else "—",
                (r["decision"] or r["end_reason"] or r["state"]).replace("_", " "),
                r["recording_state"],
            ]
            for r in rows
        ],
        empty="No finished session yet.",
        links=[f"/console/sessions/{r['id']}" for r in rows],
    )


CONTROLLERS = [VideoPages]
PANELS = [video_panel, video_queue_panel, recent_video_sessions]
