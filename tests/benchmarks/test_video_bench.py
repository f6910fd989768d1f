"""Concurrent video sessions through Janus: frame rates, CPU of Janus and of the analysis workers, memory.

Each session is a synthetic customer and manager publishing 640x480 VP8 (pre-encoded, no
re-encoding) with Opus audio, each subscribed to the other, an analysis worker sampling the
customer at 3 fps, and recording on. Everything runs inside a private network namespace
(this module re-runs itself there as ``python -m tests.benchmarks.test_video_bench``).
CPU is read from ``/proc`` once a second over a measurement window; medians are printed.

``BRANCHLESS_VIDEO_BENCH_SESSIONS`` (default 2: the machine's 2 cores are shared) sets the
number of sessions; ``BRANCHLESS_BENCH_ENFORCE=1`` fails on a missed target (>= 24 fps on
every side, Janus + analysis <= 10% of a core per session, first sampled frame within 2 s).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

SESSIONS = int(os.environ.get("BRANCHLESS_VIDEO_BENCH_SESSIONS", "2"))
WINDOW_S = float(os.environ.get("BRANCHLESS_VIDEO_BENCH_WINDOW_S", "8"))
ENFORCE = os.environ.get("BRANCHLESS_BENCH_ENFORCE") == "1"
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process (all its threads) so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def sample_cpu(pids: dict[str, int], seconds: float) -> dict[str, list[float]]:
    """Per-second CPU % of each process over ``seconds``."""
    series: dict[str, list[float]] = {name: [] for name in pids}
    last = {name: cpu_seconds(pid) for name, pid in pids.items()}
    stamp = time.monotonic()
    for _ in range(int(seconds)):
        await asyncio.sleep(1.0)
        now = time.monotonic()
        for name, pid in pids.items():
            used = cpu_seconds(pid)
            series[name].append(100.0 * (used - last[name]) / (now - stamp))
            last[name] = used
        stamp = now
    return series


async def bench(work: Path) -> dict[str, Any]:
    from tests.integration.video.media_peers import CountingSubscriber, SyntheticPublisher, make_vp8_webm
    from tests.integration.video.media_scenario import CUSTOMER_MP4, MANAGER_MP4, PEER_NETWORKS, janus_settings
    from video.media.analysis_peer import AnalysisConfig
    from video.media.analysis_worker import AnalysisWorker
    from video.media.janus_client import JanusTransport
    from video.media.janus_process import JanusProcess
    from video.media.videoroom import VideoRoomAdmin, new_room_credentials

    customer_media = make_vp8_webm(CUSTOMER_MP4, work / "customer.webm")
    manager_media = make_vp8_webm(MANAGER_MP4, work / "manager.webm", tone_hz=660.0)
    settings = janus_settings(work)
    async with (
        JanusProcess(settings, work / "janus") as janus,
        JanusTransport(janus.base_url, settings.api_secret) as api,
    ):
        app_session = await api.create_session()
        admin = await VideoRoomAdmin.attach(app_session, settings.room_admin_key)
        subscribers, workers, publishers, sessions = [], [], [], []
        first_frames: list[float] = []
        for index in range(SESSIONS):
            room = new_room_credentials(Path(settings.recordings_root))
            await admin.create_room(room)
            session = await api.create_session()
            common = {"pin": room.pin, "allowed_networks": PEER_NETWORKS, "room_secret": room.secret}
            customer = await SyntheticPublisher.start(
                session, room.room_id, display="customer", media=customer_media, recording_base="customer", **common
            )
            manager = await SyntheticPublisher.start(
                session, room.room_id, display="manager", media=manager_media, recording_base="manager", **common
            )
            await customer.wait_webrtcup()  # a feed exists once its PeerConnection is up
            await manager.wait_webrtcup()
            args = {"pin": room.pin, "allowed_networks": PEER_NETWORKS}
            subscribers.append(
                (
                    f"s{index} manager<-customer",
                    await CountingSubscriber.start(session, room.room_id, feed_id=customer.feed_id, **args),
                )
            )
            subscribers.append(
                (
                    f"s{index} customer<-manager",
                    await CountingSubscriber.start(session, room.room_id, feed_id=manager.feed_id, **args),
                )
            )
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
            workers.append(worker)
            publishers += [customer, manager]
            sessions.append(session)
        counts = [0] * len(workers)

        async def drain(i: int) -> None:
            async for _ in workers[i].frames():
                if counts[i] == 0:
                    first_frames.append(time.time() - (workers[i].started_at or 0))
                counts[i] += 1

        drains = [asyncio.create_task(drain(i)) for i in range(len(workers))]
        await asyncio.sleep(4.0)  # warm-up: every worker started, every stream at its rate
        for _, sub in subscribers:
            sub.reset()
        counts_before = list(counts)
        pids = {"janus": janus.pid or 0, "loadgen": os.getpid()}
        pids |= {f"worker{i}": w.pid or 0 for i, w in enumerate(workers)}
        cpu = await sample_cpu(pids, WINDOW_S)
        result: dict[str, Any] = {
            "sessions": SESSIONS,
            "window_s": WINDOW_S,
            "fps": {name: sub.fps() for name, sub in subscribers},
            "analysis_fps": [(c - b) / WINDOW_S for c, b in zip(counts, counts_before, strict=True)],
            "cpu_median": {name: statistics.median(values) for name, values in cpu.items()},
            "rss_mb": {name: rss_mb(pid) for name, pid in pids.items()},
            "worker_start_to_first_frame_s": first_frames,
        }
        for worker in workers:
            await worker.stop()
        for task in drains:
            task.cancel()
        for _, sub in subscribers:
            await sub.close()
        for publisher in publishers:
            await publisher.close()
        for session in [*sessions, app_session]:
            await session.destroy()
    return result


def main() -> None:
    from video.media.ice import restrict_host_addresses
    from video.media.netns import setup_namespace_network

    parser = argparse.ArgumentParser()
    parser.add_argument("scenario", choices=["bench"])
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    setup_namespace_network()
    restrict_host_addresses(("192.0.2.2/32",))
    args.work.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(asyncio.run(bench(args.work))))


def test_concurrent_sessions(tmp_path: Path) -> None:
    from tests.integration.video.netns_runner import run_scenario

    r = run_scenario("tests.benchmarks.test_video_bench", "bench", tmp_path, timeout_s=120 + 10 * SESSIONS)
    cpu = r["cpu_median"]
    workers = [v for k, v in cpu.items() if k.startswith("worker")]
    janus_per_session = cpu["janus"] / r["sessions"]
    video_streams = 3 * r["sessions"]  # customer->manager, manager->customer, customer->analysis
    server_per_session = janus_per_session + statistics.mean(workers)
    print(f"\nvideo sessions: {r['sessions']} (window {r['window_s']:.0f} s, medians of 1 s samples)")
    for name, fps in sorted(r["fps"].items()):
        print(f"  {name:<24} {fps:5.1f} fps")
    print(f"  analysis sampled fps    {', '.join(f'{f:.2f}' for f in r['analysis_fps'])}")
    print(f"  Janus CPU               {cpu['janus']:5.1f} % total, {janus_per_session:4.1f} % per session,")
    per_stream = cpu["janus"] / video_streams
    print(f"                          {per_stream:4.2f} % per forwarded video stream (+audio, recording)")
    worker_cpu = ", ".join(f"{w:.1f}" for w in workers)
    print(f"  analysis worker CPU     {worker_cpu} % (3 fps sampling, VP8 decode of 30 fps)")
    print(f"  server cost per session {server_per_session:4.1f} % of a core (Janus + analysis; target <= 10)")
    print(f"  load generator CPU      {cpu['loadgen']:5.1f} % (publishers + counting subscribers, one process)")
    print(
        f"  RSS                     janus {r['rss_mb']['janus']:.0f} MB, workers "
        f"{', '.join(f'{v:.0f}' for k, v in r['rss_mb'].items() if k.startswith('worker'))} MB"
    )
    starts = ", ".join(f"{t:.2f}" for t in r["worker_start_to_first_frame_s"])
    print(f"  worker start->first sampled frame {starts} s")
    assert all(fps > 10 for fps in r["fps"].values())
    assert all(1.5 < fps < 4.5 for fps in r["analysis_fps"])
    if ENFORCE:
        assert min(r["fps"].values()) >= 24  # the customer clip is 30 fps, the manager's 25
        assert server_per_session <= 10.0
        assert max(r["worker_start_to_first_frame_s"]) <= 2.0


if __name__ == "__main__":
    main()
