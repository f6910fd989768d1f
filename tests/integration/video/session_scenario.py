"""Whole video sessions through the app, INSIDE a private network namespace (see netns_runner).

Synthetic participants (aiortc, pre-encoded media) speak the app's signalling protocol exactly
as the pages do; the app brokers their SDP with Janus, runs the analysis peer and kyc/'s face
checks, and converts the recordings after the call. Findings are written as JSON for the
outer tests (test_video_sessions.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

from tests.integration.video.app_stack import Stack, platform, server_log
from tests.integration.video.media_peers import FIXTURES, make_vp8_webm
from tests.integration.video.media_scenario import MANAGER_MP4, PEER_NETWORKS
from tests.integration.video.signalling_client import SignallingParticipant

REAL_MP4 = FIXTURES / "video" / "lp_d13_person_real_640x480_6s.mp4"
STILL_MP4 = FIXTURES / "video" / "lp_d13_person_synthetic_still_replay_640x480_6s.mp4"
CHECKLIST = {"identityConfirmed": True, "purposeConfirmed": True, "willingnessConfirmed": True, "termsUnderstood": True}


async def _join(stack: Stack, api: httpx.AsyncClient, customer_index: int = 0) -> int:
    customer = stack.customers[customer_index]
    r = await api.post(
        "/api/video/sessions", json={"purpose": "loan", "recordingConsent": True}, headers=customer.bearer
    )
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


async def _call(stack: Stack, media: Path, result: dict[str, Any], *, decide: str) -> None:
    """Customer joins, manager accepts, both connect and see each other, analysis, liveness, decision."""
    customer, manager = stack.customers[0], stack.managers[0]
    manager_media = make_vp8_webm(MANAGER_MP4, stack.work / "manager.webm", tone_hz=660.0)
    async with httpx.AsyncClient(base_url=stack.base, timeout=30.0) as api:
        session_id = await _join(stack, api)
        result["session_id"] = session_id
        queue = (await api.get("/api/video/queue", headers=manager.bearer)).json()
        result["queue"] = queue
        cust = SignallingParticipant(stack.base, session_id, customer.cookie, media, PEER_NETWORKS)
        await cust.open()
        hello = await cust.wait_for(lambda m: m["type"] == "hello", 10)
        result["customer_hello_state"] = hello["session"]["state"]
        result["queue_position"] = hello["session"]["queuePosition"]
        r = await api.post(f"/api/video/sessions/{session_id}/accept", headers=manager.bearer)
        assert r.status_code == 200, r.text
        accepted_at = time.monotonic()
        mgr = SignallingParticipant(stack.base, session_id, manager.cookie, manager_media, PEER_NETWORKS)
        await mgr.open()
        try:
            await _observe_call(stack, api, session_id, cust, mgr, accepted_at, result, decide=decide)
        finally:
            result["customer_messages"] = [m.get("type") for m in cust.messages]
            result["manager_messages"] = [m.get("type") for m in mgr.messages]
            await cust.close()
            await mgr.close()
        result["recording"] = await _recordings(stack, api, session_id)


async def _observe_call(
    stack: Stack,
    api: httpx.AsyncClient,
    session_id: int,
    cust: SignallingParticipant,
    mgr: SignallingParticipant,
    accepted_at: float,
    result: dict[str, Any],
    *,
    decide: str,
) -> None:
    manager = stack.managers[0]
    result["manager_first_frame_s"] = _since(await mgr.wait_frames(20), accepted_at)
    result["customer_first_frame_s"] = _since(await cust.wait_frames(20), accepted_at)
    analysis = await mgr.wait_for(lambda m: m["type"] == "analysis" and m.get("distance") is not None, 30)
    result["analysis"] = analysis
    mgr.start_window()
    cust.start_window()
    await asyncio.sleep(4.0)
    result["fps_manager_sees_customer"] = mgr.window_fps()
    result["fps_customer_sees_manager"] = cust.window_fps()
    result["audio_frames"] = [mgr.audio_frames, cust.audio_frames]
    # Other people cannot join this call.
    other = SignallingParticipant(stack.base, session_id, stack.customers[1].cookie, cust.media, PEER_NETWORKS)
    await other.open()
    await other.wait_for(lambda m: m["type"] == "_closed", 10)
    result["other_customer_refused"] = [other.refused_status, other.closed_code]
    other_mgr = SignallingParticipant(stack.base, session_id, stack.managers[1].cookie, cust.media, PEER_NETWORKS)
    await other_mgr.open()
    await other_mgr.wait_for(lambda m: m["type"] == "_closed", 10)
    result["other_manager_refused"] = [other_mgr.refused_status, other_mgr.closed_code]
    r = await api.post(f"/api/video/sessions/{session_id}/accept", headers=stack.managers[1].bearer)
    result["other_manager_accept"] = [r.status_code, r.json().get("error")]
    # Liveness check: prompts to both, a verdict after the windows.
    r = await api.post(f"/api/video/sessions/{session_id}/liveness", headers=manager.bearer)
    assert r.status_code == 200, r.text
    prompts = await cust.wait_for(lambda m: m["type"] == "liveness" and m["phase"] == "running", 5)
    result["liveness_prompts"] = prompts["challenges"]
    verdict = await mgr.wait_for(lambda m: m["type"] == "liveness" and m["phase"] != "running", 40)
    result["liveness"] = verdict
    r = await api.post(f"/api/video/sessions/{session_id}/stills", headers=manager.bearer)
    result["still"] = [r.status_code, r.json()]
    r = await api.put(f"/api/video/sessions/{session_id}/checklist", json=CHECKLIST, headers=manager.bearer)
    assert r.status_code == 200, r.text
    r = await api.post(
        f"/api/video/sessions/{session_id}/decision",
        json={"decision": "approve", "reason": "identity confirmed on video"},
        headers=manager.bearer,
    )
    result["approve"] = [r.status_code, r.json().get("error"), r.json().get("state")]
    if decide == "reject" or r.status_code != 200:
        r = await api.post(
            f"/api/video/sessions/{session_id}/decision",
            json={"decision": "reject", "reason": "liveness check failed"},
            headers=manager.bearer,
        )
        result["reject"] = [r.status_code, r.json().get("state")]
    ended = await cust.wait_for(lambda m: m["type"] == "ended", 15)
    result["customer_ended"] = {"reason": ended["reason"], "decision": ended.get("session", {}).get("decision")}
    session = (await api.get(f"/api/video/sessions/{session_id}", headers=manager.bearer)).json()
    result["session"] = session


def _since(at: float | None, start: float) -> float | None:
    return None if at is None else round(at - start, 3)


async def _recordings(stack: Stack, api: httpx.AsyncClient, session_id: int) -> dict[str, Any]:
    """Wait for the conversion job, download each recording and read it back with PyAV."""
    import av

    manager = stack.managers[0]
    deadline = time.monotonic() + 90
    state = ""
    while time.monotonic() < deadline:
        state = (await api.get(f"/api/video/sessions/{session_id}", headers=manager.bearer)).json()["recordingState"]
        if state in ("stored", "failed", "none"):
            break
        await asyncio.sleep(1.0)
    found: dict[str, Any] = {"state": state, "files": []}
    listing = (await api.get(f"/api/video/sessions/{session_id}/recordings", headers=manager.bearer)).json()
    for item in listing:
        r = await api.get(f"/api/video/recordings/{item['id']}", headers=manager.bearer)
        path = stack.work / f"recording-{item['id']}.webm"
        path.write_bytes(r.content)
        with av.open(str(path)) as container:
            kinds = sorted(s.type for s in container.streams)
            duration = float(container.duration or 0) / 1_000_000
        found["files"].append(
            {
                "participant": item["participant"],
                "status": r.status_code,
                "streams": kinds,
                "duration_s": duration,
                "listed_duration_s": item["durationS"],
                "sha256_matches": __import__("hashlib").sha256(r.content).hexdigest() == item["sha256"],
            }
        )
    return found


async def scenario_app_session(work: Path) -> dict[str, Any]:
    result: dict[str, Any] = {}
    media = make_vp8_webm(REAL_MP4, work / "customer.webm")
    async with platform(work, customers=2, managers=2) as stack:
        try:
            await _call(stack, media, result, decide="approve")
            async with httpx.AsyncClient(base_url=stack.base, timeout=10.0) as api:
                result["ready"] = (await api.get("/ready")).json()
        finally:
            result["server_log"] = server_log(stack)
    return result


async def scenario_app_still(work: Path) -> dict[str, Any]:
    result: dict[str, Any] = {}
    media = make_vp8_webm(STILL_MP4, work / "still.webm")
    async with platform(work, customers=2, managers=2) as stack:
        try:
            await _call(stack, media, result, decide="reject")
        finally:
            result["server_log"] = server_log(stack)
    return result


def _fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def _children(pid: int) -> int:
    from tests.benchmarks.test_video_app_bench import tree

    return len(tree(pid)) - 1


async def _room_exists(stack: Stack, room_id: int) -> bool:
    from video.media.janus_client import JanusTransport
    from video.media.videoroom import VideoRoomAdmin

    settings = stack.janus.settings
    async with JanusTransport(stack.janus.base_url, settings.api_secret) as api:
        session = await api.create_session()
        try:
            admin = await VideoRoomAdmin.attach(session, settings.room_admin_key)
            return await admin.exists(room_id)
        finally:
            await session.destroy()


async def _room_of(stack: Stack, session_id: int) -> int | None:
    from app import db
    from video.tables import VideoSession

    await db.start_pool()
    try:
        row = await VideoSession.select(VideoSession.room_id).where(VideoSession.id == session_id).first()
    finally:
        await db.close_pool()
    return None if row is None or row["room_id"] is None else int(row["room_id"])


async def scenario_app_lifecycle(work: Path) -> dict[str, Any]:
    """Leaving, capacity, 100 sessions without leaks, and Janus going away mid-call."""
    result: dict[str, Any] = {}
    media = make_vp8_webm(REAL_MP4, work / "customer.webm")
    extra = {"BRANCHLESS_VIDEO_RECONNECT_GRACE_S": "2", "BRANCHLESS_VIDEO_MAX_SESSIONS": "1"}
    async with platform(work, customers=2, managers=1, **extra) as stack:
        try:
            await _lifecycle(stack, media, result)
        finally:
            result["server_log"] = server_log(stack)
    return result


async def _lifecycle(stack: Stack, media: Path, result: dict[str, Any]) -> None:
    first, second = stack.customers
    manager = stack.managers[0]
    join = {"purpose": "identity", "recordingConsent": True}
    async with httpx.AsyncClient(base_url=stack.base, timeout=30.0) as api:
        # 1. A customer whose connection drops and does not come back: the session ends cleanly.
        session_id = await _join(stack, api)
        r = await api.post("/api/video/sessions", json=join, headers=second.bearer)
        result["busy"] = [r.status_code, r.json().get("error"), r.headers.get("retry-after")]
        cust = SignallingParticipant(stack.base, session_id, first.cookie, media, PEER_NETWORKS)
        await cust.open()
        await api.post(f"/api/video/sessions/{session_id}/accept", headers=manager.bearer)
        mgr = SignallingParticipant(stack.base, session_id, manager.cookie, media, PEER_NETWORKS)
        await mgr.open()
        await mgr.wait_frames(20)
        room_id = await _room_of(stack, session_id)
        result["children_in_call"] = _children(stack.server.pid)
        await cust.close()  # gone without a word
        ended = await mgr.wait_for(lambda m: m["type"] == "ended", 15)
        await mgr.close()
        await asyncio.sleep(2.0)
        result["dropped"] = {"reason": ended["reason"], "room_exists": await _room_exists(stack, room_id or 0)}
        result["children_after_call"] = _children(stack.server.pid)
        # 2. Many sessions one after another leave nothing behind (rooms, tasks, sockets).
        fds_before = _fds(stack.server.pid)
        rooms = []
        for _ in range(100):
            sid = await _join(stack, api)
            r = await api.post(f"/api/video/sessions/{sid}/accept", headers=manager.bearer)
            assert r.status_code == 200, r.text
            rooms.append(await _room_of(stack, sid))
            r = await api.post(f"/api/video/sessions/{sid}/end", headers=first.bearer)
            assert r.json()["state"] == "ended", r.text
        await asyncio.sleep(1.0)
        result["hundred"] = {
            "fds_before": fds_before,
            "fds_after": _fds(stack.server.pid),
            "rooms_left": sum([await _room_exists(stack, rid or 0) for rid in rooms[-5:]]),
            "children": _children(stack.server.pid),
        }
        # 3. Janus goes away in the middle of a call: both sides are told, /ready says so.
        session_id = await _join(stack, api)
        cust = SignallingParticipant(stack.base, session_id, first.cookie, media, PEER_NETWORKS)
        await cust.open()
        await api.post(f"/api/video/sessions/{session_id}/accept", headers=manager.bearer)
        mgr = SignallingParticipant(stack.base, session_id, manager.cookie, media, PEER_NETWORKS)
        await mgr.open()
        await mgr.wait_frames(20)
        await stack.janus.stop()
        error = await cust.wait_for(lambda m: m["type"] == "error", 30)
        ended = await mgr.wait_for(lambda m: m["type"] == "ended", 30)
        ready = await api.get("/ready")
        r = await api.post("/api/video/sessions", json=join, headers=first.bearer)
        sid = r.json().get("id")
        accept = await api.post(f"/api/video/sessions/{sid}/accept", headers=manager.bearer)
        result["janus_down"] = {
            "customer_error": error.get("error"),
            "manager_ended": ended["reason"],
            "ready": [ready.status_code, ready.json()["checks"].get("media_server")],
            "accept": [accept.status_code, accept.json().get("error")],
            "after_failed_accept": (await api.get(f"/api/video/sessions/{sid}", headers=manager.bearer)).json()[
                "state"
            ],
        }
        await cust.close()
        await mgr.close()


SCENARIOS: dict[str, Callable[[Path], Awaitable[dict[str, Any]]]] = {
    "app_lifecycle": scenario_app_lifecycle,
    "app_session": scenario_app_session,
    "app_still": scenario_app_still,
}


def main() -> None:
    from video.media.ice import restrict_host_addresses
    from video.media.netns import setup_namespace_network

    parser = argparse.ArgumentParser()
    parser.add_argument("scenario", choices=sorted(SCENARIOS))
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    setup_namespace_network()
    restrict_host_addresses(PEER_NETWORKS)
    args.work.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    result = asyncio.run(SCENARIOS[args.scenario](args.work))
    result["elapsed_s"] = time.monotonic() - started
    args.out.write_text(json.dumps(result, default=str))
    os.sync()


if __name__ == "__main__":
    main()
