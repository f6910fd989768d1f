"""A real browser as the customer: headless Chromium publishes its fake camera into Janus, in a private namespace.

Runs INSIDE the namespace (started by ``test_media_browser`` through ``netns_runner``). The page
is served by Playwright's request interception on ``http://127.0.0.1`` (a secure context, so
``getUserMedia`` exists) and no socket is opened for it; its ``/offer`` call is answered by the
same Python code the signalling layer will use (``Publisher.join`` + ``publish``), so the SDP
path is the production one. Chromium's fake camera plays the customer's face video; the
analysis worker and an aiortc subscriber receive it through Janus.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path
from typing import Any

import msgspec
from playwright.async_api import Route, async_playwright

from tests.integration.video.media_peers import FIXTURES, CountingSubscriber
from tests.integration.video.media_scenario import PEER_NETWORKS, face_facts, janus_settings
from video.media.analysis_peer import AnalysisConfig, SampledFrame
from video.media.analysis_worker import AnalysisWorker
from video.media.ice import restrict_host_addresses, sdp_candidates
from video.media.janus_client import JanusTransport
from video.media.janus_process import JanusProcess
from video.media.netns import DEFAULT_VETH, setup_namespace_network
from video.media.recordings import convert_room_recordings
from video.media.videoroom import Publisher, VideoRoomAdmin, new_room_credentials

CHROMIUM = "/usr/bin/chromium"
FAKE_CAMERA = FIXTURES / "video" / "lp_d13_person_real_320x240_15fps_6s.y4m"
ORIGIN = "http://127.0.0.1:8765"
PAGE = """<!doctype html><meta charset="utf-8"><title>customer</title><video id="me" autoplay muted></video>
<script>
async function publish() {
  const stream = await navigator.mediaDevices.getUserMedia({video: true, audio: true});
  document.getElementById("me").srcObject = stream;
  const pc = new RTCPeerConnection({iceServers: []});
  stream.getTracks().forEach(t => pc.addTrack(t, stream));
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise(done => {
    if (pc.iceGatheringState === "complete") return done();
    pc.onicegatheringstatechange = () => pc.iceGatheringState === "complete" && done();
  });
  const answer = await (await fetch("/offer", {method: "POST", body: JSON.stringify(pc.localDescription)})).json();
  await pc.setRemoteDescription(answer);
  window.pc = pc;
  return pc.localDescription.sdp;
}
</script>"""
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    f"--use-file-for-fake-video-capture={FAKE_CAMERA}",
    "--disable-features=WebRtcHideLocalIpsWithMdns",  # real host candidates: Janus ignores .local names
]


async def scenario_browser(work: Path) -> dict[str, Any]:
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
        publisher = await Publisher.join(session, room.room_id, pin=room.pin, display="customer")

        async def serve(route: Route) -> None:
            """Stands in for the app: the page, and the signalling call that brokers SDP with Janus."""
            if route.request.url.endswith("/offer"):
                offer = json.loads(route.request.post_data or "{}")
                answer = await publisher.publish(offer, recording_base="customer", room_secret=room.secret)
                await route.fulfill(status=200, content_type="application/json", body=json.dumps(answer))
            else:
                await route.fulfill(status=200, content_type="text/html", body=PAGE)

        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            page = await browser.new_page()
            await page.route(f"{ORIGIN}/**", serve)
            await page.goto(f"{ORIGIN}/")
            browser_sdp = await page.evaluate("publish()")
            result["browser_candidates"] = sorted({a for a, _ in sdp_candidates(browser_sdp)})
            await publisher.handle.wait_for("webrtcup", 15.0)
            viewer = await CountingSubscriber.start(
                session, room.room_id, pin=room.pin, feed_id=publisher.id, allowed_networks=PEER_NETWORKS
            )
            worker = AnalysisWorker(
                AnalysisConfig(
                    janus_url=janus.base_url,
                    api_secret=settings.api_secret,
                    room_id=room.room_id,
                    pin=room.pin,
                    feed_id=publisher.id,
                    allowed_networks=PEER_NETWORKS,
                    sample_fps=3.0,
                )
            )
            worker.start()
            frames: list[SampledFrame] = []

            async def collect() -> None:
                async for item in worker.frames():
                    frames.append(item.payload)

            collector = asyncio.create_task(collect())
            await asyncio.sleep(5.0)
            result["viewer_fps"] = viewer.fps()
            result["viewer_attempts"] = viewer.attempts
            result["viewer_audio_frames"] = viewer.audio_frames
            result["viewer_size"] = viewer.size
            result["browser_connection_state"] = await page.evaluate("window.pc.connectionState")
            await page.screenshot(path=str(work / "customer-page.png"))
            await admin.destroy_room(room.room_id, room.secret)
            await asyncio.wait_for(collector, 15.0)
            await worker.stop()
            result["analysis_reason"] = worker.outcome.reason if worker.outcome else None
            result["analysis_attempts"] = worker.outcome.stats.attempts if worker.outcome else None
            result["frames_sampled"] = len(frames)
            result["frame_sizes"] = sorted({(f.width, f.height) for f in frames})
            result |= face_facts(frames) if frames else {}
            await viewer.close()
            await browser.close()
        await publisher.close()
        await session.destroy()
    result["screenshot"] = str(work / "customer-page.png")
    # A browser's recording (its own RTP clocks, Opus with DTX...) through the same conversion job.
    result["recordings"] = [msgspec.to_builtins(r) for r in convert_room_recordings(Path(room.rec_dir), work / "out")]
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("scenario", choices=["browser"])
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    setup_namespace_network()
    restrict_host_addresses(PEER_NETWORKS)
    args.work.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    result = asyncio.run(scenario_browser(args.work))
    result["elapsed_s"] = time.monotonic() - started
    result["janus_address"] = DEFAULT_VETH.janus_address
    args.out.write_text(json.dumps(result, default=str))


if __name__ == "__main__":
    main()
