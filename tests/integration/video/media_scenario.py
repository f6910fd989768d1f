"""Media scenarios that run INSIDE a private network namespace and print their findings as JSON.

The outer pytest test (``conftest.run_media_scenario``) starts this module under
``unshare --net``; it sets up loopback and the veth pair, starts a real Janus, drives real
aiortc peers and the analysis worker, and writes facts (frame counts, rates, error codes,
recording metadata) to ``--out``. The outer test asserts on them. Nothing here addresses
anything outside the namespace: Janus's API is on 127.0.0.1, media on 192.0.2.0/24, no STUN.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import msgspec

from tests.integration.video.media_peers import FIXTURES, CountingSubscriber, SyntheticPublisher, make_vp8_webm
from video.media.analysis_peer import AnalysisConfig, SampledFrame
from video.media.analysis_worker import AnalysisWorker
from video.media.errors import JanusError, JanusUnavailable
from video.media.ice import restrict_host_addresses, sdp_candidates
from video.media.janus_client import JanusTransport
from video.media.janus_config import JanusSettings, generate_secrets
from video.media.janus_process import JanusProcess
from video.media.netns import DEFAULT_VETH, setup_namespace_network
from video.media.recordings import convert_room_recordings
from video.media.videoroom import Publisher, Subscriber, VideoRoomAdmin, new_room_credentials

PEER_NETWORKS = (f"{DEFAULT_VETH.peer_address}/32",)
CUSTOMER_MP4 = FIXTURES / "video" / "lp_d13_person_real_640x480_6s.mp4"
MANAGER_MP4 = FIXTURES / "video" / "crowd_real_640x480_4s.mp4"
PORTRAIT = FIXTURES / "images" / "lp_d13_person_portrait.jpg"


def janus_settings(work: Path, **overrides: Any) -> JanusSettings:
    """Janus with ICE on the veth end named for it, its SDP address set (no default route here)."""
    fields: dict[str, Any] = {
        **generate_secrets(),
        "ice_enforce_list": (DEFAULT_VETH.janus_if,),
        "sdp_address": DEFAULT_VETH.janus_address,
        "recordings_root": str(work / "recordings"),
        "http_port": 8088,
        **overrides,
    }
    return msgspec.convert(fields, JanusSettings)


def face_facts(frames: list[SampledFrame]) -> dict[str, Any]:
    """Faces found (HOG) in a few sampled frames and their distance to the enrolled portrait."""
    import face_recognition

    portrait = face_recognition.load_image_file(str(PORTRAIT))
    reference = face_recognition.face_encodings(portrait)[0]
    picks = [frames[i] for i in sorted({0, len(frames) // 2, len(frames) - 1})]
    faces, distances = [], []
    for frame in picks:
        rgb = frame.to_rgb()
        boxes = face_recognition.face_locations(rgb)
        faces.append(len(boxes))
        if boxes:
            encoding = face_recognition.face_encodings(rgb, boxes)[0]
            distances.append(float(face_recognition.face_distance([reference], encoding)[0]))
    return {"faces_per_frame": faces, "portrait_distances": distances}


async def scenario_session(work: Path) -> dict[str, Any]:
    """A whole session: both publish, each subscribes to the other, analysis samples, room ends, recordings."""
    customer_media = make_vp8_webm(CUSTOMER_MP4, work / "customer.webm")
    manager_media = make_vp8_webm(MANAGER_MP4, work / "manager.webm", tone_hz=660.0)
    settings = janus_settings(work)
    result: dict[str, Any] = {}
    async with (
        JanusProcess(settings, work / "janus") as janus,
        JanusTransport(janus.base_url, settings.api_secret) as api,
    ):
        app_session = await api.create_session()
        admin = await VideoRoomAdmin.attach(app_session, settings.room_admin_key)
        room = new_room_credentials(Path(settings.recordings_root), description="kyc-case-test")
        await admin.create_room(room)
        customer_session, manager_session = await api.create_session(), await api.create_session()
        common = {"pin": room.pin, "allowed_networks": PEER_NETWORKS, "room_secret": room.secret}
        customer = await SyntheticPublisher.start(
            customer_session,
            room.room_id,
            display="customer",
            media=customer_media,
            recording_base="customer",
            **common,
        )
        manager = await SyntheticPublisher.start(
            manager_session, room.room_id, display="manager", media=manager_media, recording_base="manager", **common
        )
        result["publisher_webrtcup_s"] = [await customer.wait_webrtcup(), await manager.wait_webrtcup()]
        result["participants"] = sorted(
            (p.display or "", p.publisher) for p in await admin.list_participants(room.room_id)
        )
        sub_args = {"pin": room.pin, "allowed_networks": PEER_NETWORKS}
        manager_sees = await CountingSubscriber.start(
            manager_session, room.room_id, feed_id=customer.feed_id, **sub_args
        )
        customer_sees = await CountingSubscriber.start(
            customer_session, room.room_id, feed_id=manager.feed_id, **sub_args
        )
        result["janus_candidates"] = sorted({a for a, _ in sdp_candidates(manager_sees.subscriber.offer["sdp"])})
        worker = AnalysisWorker(
            AnalysisConfig(
                janus_url=janus.base_url,
                api_secret=settings.api_secret,
                room_id=room.room_id,
                pin=room.pin,
                feed_id=customer.feed_id,
                allowed_networks=PEER_NETWORKS,
                sample_fps=3.0,
            )
        )
        worker.start()
        frames: list[SampledFrame] = []
        arrivals: list[float] = []

        async def collect() -> None:
            async for item in worker.frames():
                frames.append(item.payload)
                arrivals.append(time.time())

        collector = asyncio.create_task(collect())
        await asyncio.sleep(6.0)
        result["fps_manager_sees_customer"] = manager_sees.fps()
        result["fps_customer_sees_manager"] = customer_sees.fps()
        result["viewer_attempts"] = [manager_sees.attempts, customer_sees.attempts]
        result["frame_sizes"] = [manager_sees.size, customer_sees.size]
        await admin.destroy_room(room.room_id, room.secret)  # end of the session
        ended_at = time.time()
        await asyncio.wait_for(collector, 15.0)
        outcome = worker.outcome
        result["analysis"] = {
            "reason": outcome.reason if outcome else None,
            "error": outcome.error if outcome else None,
            "attempts": outcome.stats.attempts if outcome else None,
            "frames_received": outcome.stats.frames_received if outcome else 0,
            "frames_sampled": len(frames),
            "sizes": sorted({(f.width, f.height) for f in frames}),
            "mean_levels": [float(f.to_rgb().mean()) for f in frames[:3]],
            "sampled_fps": (len(frames) - 1) / (arrivals[-1] - arrivals[0]) if len(frames) > 1 else 0.0,
            "media_times": [f.media_time_s for f in frames[:5]],
            "worker_start_to_first_frame_s": arrivals[0] - (worker.started_at or 0) if arrivals else None,
            "subscribed_to_first_frame_s": (
                outcome.stats.first_frame_at - outcome.stats.subscribed_at
                if outcome and outcome.stats.first_frame_at and outcome.stats.subscribed_at
                else None
            ),
            "end_detected_after_s": (outcome.stats.ended_at or 0) - ended_at if outcome else None,
            **face_facts(frames),
        }
        await worker.stop()
        result["analysis"]["worker_exitcode"] = worker.exitcode
        for peer in (manager_sees, customer_sees, customer, manager):
            await peer.close()
        for session in (customer_session, manager_session, app_session):
            await session.destroy()
    # Janus has stopped (SIGINT): every recording is closed; convert as the background job would.
    recordings = convert_room_recordings(Path(room.rec_dir), work / "converted")
    result["recordings"] = [msgspec.to_builtins(r) for r in recordings]
    result["janus_stopped"] = not janus.running
    return result


async def _expect_error(call: Callable[[], Awaitable[object]]) -> dict[str, Any]:
    try:
        await call()
    except JanusError as exc:
        return {"error": type(exc).__name__, "code": exc.code}
    return {"error": None, "code": None}


async def scenario_access(work: Path) -> dict[str, Any]:
    """Nobody without this room's PIN, secret or the admin key gets in, or at its feeds."""
    media = make_vp8_webm(CUSTOMER_MP4, work / "customer.webm")
    settings = janus_settings(work)
    result: dict[str, Any] = {}
    async with (
        JanusProcess(settings, work / "janus") as janus,
        JanusTransport(janus.base_url, settings.api_secret) as api,
    ):
        session = await api.create_session()
        admin = await VideoRoomAdmin.attach(session, settings.room_admin_key)
        room_a = new_room_credentials(Path(settings.recordings_root))
        room_b = new_room_credentials(Path(settings.recordings_root))
        await admin.create_room(room_a)
        await admin.create_room(room_b)
        customer = await SyntheticPublisher.start(
            session, room_a.room_id, pin=room_a.pin, display="customer", media=media, allowed_networks=PEER_NETWORKS
        )
        await customer.wait_webrtcup()
        feed = customer.feed_id
        result["join_with_other_rooms_pin"] = await _expect_error(
            lambda: Publisher.join(session, room_a.room_id, pin=room_b.pin, display="intruder")
        )
        result["join_without_pin"] = await _expect_error(
            lambda: Publisher.join(session, room_a.room_id, pin="", display="intruder")
        )
        result["subscribe_with_wrong_pin"] = await _expect_error(
            lambda: Subscriber.join(session, room_a.room_id, pin=room_b.pin, feed_id=feed)
        )
        result["subscribe_through_other_room"] = await _expect_error(
            lambda: Subscriber.join(session, room_b.room_id, pin=room_b.pin, feed_id=feed)
        )
        result["destroy_with_other_rooms_secret"] = await _expect_error(
            lambda: admin.destroy_room(room_a.room_id, room_b.secret)
        )
        result["create_without_admin_key"] = await _expect_error(
            lambda: VideoRoomAdmin(admin.handle, "not-the-admin-key").create_room(
                new_room_credentials(Path(settings.recordings_root))
            )
        )
        async with JanusTransport(janus.base_url, "not-the-api-secret") as stranger:
            result["api_with_wrong_secret"] = await _expect_error(stranger.create_session)
        result["room_a_still_exists"] = await admin.exists(room_a.room_id)
        result["participants_of_a"] = [p.display for p in await admin.list_participants(room_a.room_id)]
        right = await Subscriber.join(session, room_a.room_id, pin=room_a.pin, feed_id=feed)
        result["subscribe_with_right_pin_streams"] = sorted(s.type for s in right.streams)
        await right.close()
        await customer.close()
        await admin.destroy_room(room_a.room_id, room_a.secret)
        await admin.destroy_room(room_b.room_id, room_b.secret)
        await session.destroy()
    return result


async def _worker_outcome(config: AnalysisConfig, *, stop_after_s: float | None = None) -> dict[str, Any]:
    """Run a worker until it ends by itself (or stop it after ``stop_after_s``); what it reported."""
    worker = AnalysisWorker(config)
    worker.start()
    frames = 0

    async def drain() -> None:
        nonlocal frames
        async for _ in worker.frames():
            frames += 1

    task = asyncio.create_task(drain())
    if stop_after_s is not None:
        await asyncio.sleep(stop_after_s)
        await worker.stop()
    await asyncio.wait_for(task, 30.0)
    await worker.stop()
    outcome = worker.outcome
    return {
        "reason": outcome.reason if outcome else None,
        "error": outcome.error if outcome else None,
        "frames": frames,
        "exitcode": worker.exitcode,
        "ended_at": outcome.stats.ended_at if outcome else None,
    }


async def scenario_lifecycle(work: Path) -> dict[str, Any]:
    """How an analysis ends: the customer leaves, the caller stops it, the feed never existed; Janus down."""
    media = make_vp8_webm(CUSTOMER_MP4, work / "customer.webm")
    settings = janus_settings(work)
    result: dict[str, Any] = {}
    async with (
        JanusProcess(settings, work / "janus") as janus,
        JanusTransport(janus.base_url, settings.api_secret) as api,
    ):
        session = await api.create_session()
        admin = await VideoRoomAdmin.attach(session, settings.room_admin_key)
        room = new_room_credentials(Path(settings.recordings_root))
        await admin.create_room(room)
        config = AnalysisConfig(
            janus_url=janus.base_url,
            api_secret=settings.api_secret,
            room_id=room.room_id,
            pin=room.pin,
            feed_id=1,
            allowed_networks=PEER_NETWORKS,
        )
        customer = await SyntheticPublisher.start(
            session, room.room_id, pin=room.pin, display="customer", media=media, allowed_networks=PEER_NETWORKS
        )
        await customer.wait_webrtcup()
        config = msgspec.structs.replace(config, feed_id=customer.feed_id)
        result["stopped_by_caller"] = await _worker_outcome(config, stop_after_s=3.0)
        leaving = asyncio.create_task(_worker_outcome(config))
        await asyncio.sleep(3.0)
        await customer.close()  # the customer hangs up
        left_at = time.time()
        result["customer_left"] = await leaving
        result["customer_left"]["detected_after_s"] = result["customer_left"]["ended_at"] - left_at
        result["unknown_feed"] = await _worker_outcome(msgspec.structs.replace(config, feed_id=424242))
        await admin.destroy_room(room.room_id, room.secret)
        await session.destroy()
    async with JanusTransport(janus.base_url, settings.api_secret, request_timeout_s=2.0) as api:
        result["janus_down"] = await _expect_unavailable(api)
    return result


async def _expect_unavailable(api: JanusTransport) -> str | None:
    try:
        await api.create_session()
    except JanusUnavailable as exc:
        return type(exc).__name__
    return None


SCENARIOS: dict[str, Callable[[Path], Awaitable[dict[str, Any]]]] = {
    "session": scenario_session,
    "access": scenario_access,
    "lifecycle": scenario_lifecycle,
}


def main() -> None:
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
    result["namespace_interfaces"] = sorted(name for _, name in socket.if_nameindex())
    args.out.write_text(json.dumps(result, default=str))
    os.sync()


if __name__ == "__main__":
    main()
