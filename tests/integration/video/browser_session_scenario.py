"""Whole video sessions in two real browsers, INSIDE a private network namespace (see netns_runner).

Two headless Chromium instances (Debian's /usr/bin/chromium) drive the real pages against
``branchless serve`` (app_stack.platform): the customer (fake camera playing a clip of the
person whose portrait the KYC case holds) opens /video, consents and queues; the account
manager (Chromium's default fake camera) accepts from /console and runs the session from
/console/sessions/{id}: face match, liveness check, checklist, decision; then the finished
session's page plays the recordings back. Findings (read from the pages' DOM, their
``window.videoCall`` state and their signalling frames) are written as JSON for
test_video_browsers.py; screenshots are kept in the work folder's ``shots``.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import re
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import httpx
from playwright.async_api import Browser, BrowserContext, Page, Playwright, async_playwright

from app.middleware import SESSION_COOKIE
from tests.integration.video.app_stack import Stack, platform, server_log
from tests.integration.video.media_peers import FIXTURES
from tests.integration.video.media_scenario import PEER_NETWORKS

CHROMIUM = "/usr/bin/chromium"
REAL_Y4M = FIXTURES / "video" / "lp_d13_person_real_320x240_15fps_6s.y4m"
STILL_MP4 = FIXTURES / "video" / "lp_d13_person_synthetic_still_replay_640x480_6s.mp4"
BASE_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    "--disable-features=WebRtcHideLocalIpsWithMdns",  # real host candidates: Janus ignores .local names
]
PHONE = {"width": 390, "height": 844}
DESK = {"width": 1280, "height": 900}
ACTION_PROMPTS = (
    "Blink",
    "Turn your head to the left",
    "Turn your head to the right",
    "Nod",
    "Open your mouth",
    "Smile",
)

RECEIVE_STATS = """async () => {
  const pc = window.videoCallClient && window.videoCallClient.subscriber;
  if (!pc) return null;
  let out = null;
  (await pc.getStats()).forEach((r) => {
    if (r.type === "inbound-rtp" && (r.kind || r.mediaType) === "video") {
      out = {frames: r.framesDecoded || 0, width: r.frameWidth || 0, height: r.frameHeight || 0, t: performance.now()};
    }
  });
  return out;
}"""

VIDEO_ELEMENT = """(id) => { const v = document.getElementById(id);
  return {width: v.videoWidth, height: v.videoHeight, paused: v.paused, readyState: v.readyState}; }"""

RECORDING_VIDEOS = """() => [...document.querySelectorAll('#recordings .recording')].map((div) => {
  const v = div.querySelector('video');
  return {id: Number(div.dataset.recording), who: div.querySelector('h3').textContent,
          readyState: v.readyState, duration: Number.isFinite(v.duration) ? v.duration : -1,
          width: v.videoWidth, height: v.videoHeight, error: v.error ? v.error.code : null};
})"""


class Watched:
    """One participant's browser page, with what it logged and the signalling frames it received."""

    def __init__(self, name: str, page: Page, started: float) -> None:
        self.name = name
        self.page = page
        self.started = started
        self.console: list[str] = []
        self.frames: list[tuple[float, dict[str, Any]]] = []
        self.failed_requests: list[str] = []
        page.on("console", lambda m: self.console.append(f"{m.type}: {m.text}"))
        page.on(
            "response",
            lambda r: (
                self.failed_requests.append(f"{r.status} {r.request.method} {r.url}") if r.status >= 400 else None
            ),
        )
        page.on("pageerror", lambda e: self.console.append(f"pageerror: {e}"))
        page.on("websocket", self._socket)

    def _socket(self, ws: Any) -> None:
        def received(payload: str | bytes) -> None:
            try:
                message = json.loads(payload)
            except ValueError:
                return
            if isinstance(message, dict):
                self.frames.append((time.monotonic() - self.started, message))

        ws.on("framereceived", received)

    def messages(self, kind: str) -> list[dict[str, Any]]:
        return [m for _, m in self.frames if m.get("type") == kind]

    async def shot(self, work: Path, name: str, shots: list[str]) -> None:
        path = work / "shots" / f"{name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        await self.page.screenshot(path=str(path), full_page=True)
        shots.append(str(path))

    async def call_state(self) -> dict[str, Any]:
        state: dict[str, Any] = await self.page.evaluate("() => ({...(window.videoCall || {})})")
        return state


def still_y4m(work: Path) -> Path:
    """The replayed still photo as a .y4m file Chromium's fake camera can play (PyAV)."""
    import av

    out = work / "still_replay_640x480.y4m"
    if out.exists():
        return out
    with av.open(str(STILL_MP4)) as src, av.open(str(out), "w", format="yuv4mpegpipe") as dst:
        source = src.streams.video[0]
        stream = dst.add_stream("rawvideo", rate=source.average_rate)
        stream.width, stream.height, stream.pix_fmt = source.width, source.height, "yuv420p"
        for frame in src.decode(source):
            for packet in stream.encode(frame.reformat(format="yuv420p")):
                dst.mux(packet)
        for packet in stream.encode():
            dst.mux(packet)
    return out


async def _browser(playwright: Playwright, camera: Path | None) -> Browser:
    args = [*BASE_ARGS] + ([f"--use-file-for-fake-video-capture={camera}"] if camera else [])
    return await playwright.chromium.launch(executable_path=CHROMIUM, args=args, headless=True)


async def _context(browser: Browser, stack: Stack, cookie: str, viewport: dict[str, int]) -> BrowserContext:
    context = await browser.new_context(viewport=viewport, device_scale_factor=1)  # type: ignore[arg-type]
    await context.add_cookies([{"name": SESSION_COOKIE, "value": cookie, "url": stack.base}])
    return context


async def _receive_fps(page: Page, seconds: float = 5.0) -> dict[str, Any]:
    """Frames the page decoded from the other participant, per second, over a window."""
    first = await page.evaluate(RECEIVE_STATS)
    await asyncio.sleep(seconds)
    last = await page.evaluate(RECEIVE_STATS)
    if not first or not last:
        return {"fps": 0.0}
    elapsed = (last["t"] - first["t"]) / 1000
    return {"fps": round((last["frames"] - first["frames"]) / elapsed, 2), "size": [last["width"], last["height"]]}


async def _recordings(stack: Stack, api: httpx.AsyncClient, session_id: int) -> dict[str, Any]:
    """Wait for the conversion job, then download each recording and read it back with PyAV."""
    import av

    manager = stack.managers[0]
    deadline = time.monotonic() + 120
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
            streams = sorted(s.type for s in container.streams)
            video = container.streams.video[0] if container.streams.video else None
            size = [video.width, video.height] if video is not None else None
            duration = float(container.duration or 0) / 1_000_000
        found["files"].append(
            {
                "id": item["id"],
                "participant": item["participant"],
                "status": r.status_code,
                "streams": streams,
                "size": size,
                "duration_s": round(duration, 2),
                "listed_duration_s": item["durationS"],
                "codecs": [item["videoCodec"], item["audioCodec"]],
                "sha256_matches": hashlib.sha256(r.content).hexdigest() == item["sha256"],
            }
        )
    return found


async def _queue_and_accept(
    stack: Stack, cust: Watched, mgr: Watched, result: dict[str, Any], shots: list[str]
) -> tuple[int, float]:
    """The customer checks devices, consents and queues; the manager accepts from the console."""
    page = cust.page
    await page.goto(f"{stack.base}/video")
    await page.click("#check")
    await page.wait_for_selector("#step-join", state="visible", timeout=15000)
    await page.select_option("#purpose", "loan")
    await page.check("#consent")
    await page.click("#join")
    await page.wait_for_selector("#step-waiting", state="visible", timeout=15000)
    await page.wait_for_function("() => window.videoCall && window.videoCall.wsState === 'open'", timeout=15000)
    session_id = int(await page.evaluate("Number(sessionStorage.getItem('branchless.videoSession'))"))
    result["session_id"] = session_id
    result["queue_position_shown"] = await page.text_content("#queue-position")
    await cust.shot(stack.work, "01-customer-queue", shots)

    console = mgr.page
    await console.goto(f"{stack.base}/console")
    row = console.locator(f"#queue tr[data-session='{session_id}']")
    await row.wait_for(state="visible", timeout=15000)
    result["console_row"] = await row.inner_text()
    await mgr.shot(stack.work, "02-console-queue", shots)
    await row.locator("button.accept").click()
    accepted = time.monotonic()
    await console.wait_for_url(f"{stack.base}/console/sessions/{session_id}", timeout=15000)
    await console.wait_for_selector("#live", timeout=15000)
    return session_id, accepted


async def _media(
    stack: Stack, cust: Watched, mgr: Watched, accepted: float, result: dict[str, Any], shots: list[str]
) -> None:
    """Both pages decode the other's video; the console shows the face match."""
    for who, watched in (("manager", mgr), ("customer", cust)):
        try:
            await watched.page.wait_for_function("() => window.videoCall.remoteFrames > 10", timeout=45000)
            result[f"{who}_first_frames_s"] = round(time.monotonic() - accepted, 2)
        except Exception:
            result[f"{who}_first_frames_s"] = None
            result[f"{who}_call_state_at_timeout"] = await watched.call_state()
            raise
    result["manager_receives"] = await _receive_fps(mgr.page)
    result["customer_receives"] = await _receive_fps(cust.page)
    result["manager_remote_video"] = await mgr.page.evaluate(VIDEO_ELEMENT, "remote")
    result["customer_remote_video"] = await cust.page.evaluate(VIDEO_ELEMENT, "remote")
    result["manager_call"] = await mgr.call_state()
    result["customer_call"] = await cust.call_state()
    # The live face match, as the manager sees it on the console.
    await mgr.page.wait_for_function(
        "() => /\\d\\.\\d+ [≤>] \\d\\.\\d+/.test(document.getElementById('match-distance').textContent)", timeout=60000
    )
    result["face_match_shown_s"] = round(time.monotonic() - accepted, 2)
    text = (await mgr.page.text_content("#match-distance")) or ""
    found = re.search(r"(\d\.\d+) ([≤>]) (\d\.\d+)", text)
    result["face_match"] = {
        "text": text,
        "distance": float(found.group(1)) if found else None,
        "threshold": float(found.group(3)) if found else None,
        "box_class": await mgr.page.get_attribute("#match", "class"),
        "frames_analysed": await mgr.page.text_content("#frames"),
        "case_state": await mgr.page.text_content("#case-state"),
    }
    verdicts = [(t, m) for t, m in mgr.frames if m.get("type") == "analysis" and m.get("distance") is not None]
    result["first_verdict_s"] = verdicts[0][1]["firstVerdictS"] if verdicts else None
    since_accept = accepted - mgr.started
    result["analysis_timeline"] = [
        [round(t - since_accept, 2), m.get("framesAnalysed"), m.get("distance")]
        for t, m in mgr.frames
        if m.get("type") == "analysis"
    ][:12]
    # When the console received it, counted from the manager's Accept click.
    result["first_distance_on_console_s"] = round(verdicts[0][0] - (accepted - mgr.started), 2) if verdicts else None
    await mgr.shot(stack.work, "03-console-live", shots)
    await cust.shot(stack.work, "04-customer-call", shots)


async def _liveness(stack: Stack, cust: Watched, mgr: Watched, result: dict[str, Any], shots: list[str]) -> None:
    """The manager starts the check; the customer's page prompts; the verdict shows on the console."""
    await mgr.page.click("#liveness-start")
    started = time.monotonic()
    await cust.page.wait_for_function(
        f"() => {json.dumps(list(ACTION_PROMPTS))}.includes(document.getElementById('prompt-en').textContent)"
        " && !document.getElementById('liveness-prompt').hidden",
        timeout=20000,
    )
    result["customer_prompt"] = [await cust.page.text_content("#prompt-zh"), await cust.page.text_content("#prompt-en")]
    await cust.shot(stack.work, "05-customer-liveness-prompt", shots)
    await mgr.shot(stack.work, "06-console-liveness-running", shots)
    result["console_challenges_running"] = await mgr.page.locator("#challenges li").all_inner_texts()
    await mgr.page.wait_for_function(
        "() => ['passed', 'failed', 'incomplete'].some((p) =>"
        " document.getElementById('liveness-phase').classList.contains(p))",
        timeout=60000,
    )
    result["liveness_verdict_s"] = round(time.monotonic() - started, 2)
    result["liveness_phase_shown"] = await mgr.page.text_content("#liveness-phase")
    result["liveness_phase"] = (
        (await mgr.page.get_attribute("#liveness-phase", "class") or "").replace("badge", "").strip()
    )
    result["liveness_reason_shown"] = await mgr.page.text_content("#liveness-reason")
    result["console_challenges"] = await mgr.page.locator("#challenges li").all_inner_texts()
    prompts = cust.messages("liveness")
    result["liveness_prompts"] = prompts[0]["challenges"] if prompts else []
    await asyncio.sleep(0.5)
    result["customer_liveness_result"] = [
        await cust.page.text_content("#prompt-zh"),
        await cust.page.text_content("#prompt-en"),
    ]
    await mgr.shot(stack.work, "07-console-liveness-verdict", shots)
    await cust.shot(stack.work, "08-customer-liveness-result", shots)


async def _checklist(mgr: Watched) -> list[bool]:
    """Tick each item the way a person does: one click, the save goes through, the next."""
    for item in ("identityConfirmed", "purposeConfirmed", "willingnessConfirmed", "termsUnderstood"):
        async with mgr.page.expect_response(lambda r: r.url.endswith("/checklist")) as saved:
            await mgr.page.click(f"input[data-item='{item}']")
        assert (await saved.value).status == 200
    await asyncio.sleep(0.5)
    ticked: list[bool] = await mgr.page.eval_on_selector_all("input[data-item]", "els => els.map((e) => e.checked)")
    return ticked


async def _decide(
    stack: Stack, cust: Watched, mgr: Watched, result: dict[str, Any], shots: list[str], *, expect_refusal: bool
) -> None:
    page = mgr.page
    result["checklist_ticked"] = await _checklist(mgr)
    await page.fill("#reason", "身份核实无误 identity confirmed on video")
    async with page.expect_response(lambda r: r.url.endswith("/decision")) as answer:
        await page.click("#approve")
    response = await answer.value
    # An approval reloads the console: its body is gone by then, and only a refusal's matters.
    refusal = None if response.ok else (await response.json()).get("error")
    result["approve_status"] = [response.status, refusal]
    if expect_refusal:
        await page.wait_for_selector("#message.error", timeout=10000)
        result["approve_refusal_shown"] = await page.text_content("#message")
        await mgr.shot(stack.work, "09-console-approve-refused", shots)
        await page.fill("#reason", "活体检测未通过 liveness check failed")
        async with page.expect_response(lambda r: r.url.endswith("/decision")) as answer:
            await page.click("#reject")
        result["reject_status"] = (await answer.value).status
    # Both pages show the outcome: the customer's result card, the console's record.
    await cust.page.wait_for_selector("#step-outcome", state="visible", timeout=20000)
    result["customer_outcome"] = [
        await cust.page.text_content("#outcome-title"),
        await cust.page.text_content("#outcome-text"),
        await cust.page.get_attribute("#step-outcome", "class"),
    ]
    await cust.shot(stack.work, "10-customer-outcome", shots)
    await page.wait_for_selector("#record", timeout=20000)
    result["console_outcome"] = {
        "state": await page.text_content("#state-badge"),
        "decision": ((await page.text_content("#decision")) or "").strip(),
    }
    result["customer_call_after"] = await cust.call_state()


async def _playback(
    stack: Stack, api: httpx.AsyncClient, mgr: Watched, session_id: int, result: dict[str, Any], shots: list[str]
) -> None:
    """The recordings are stored, readable with PyAV, and the finished session's page loads and plays them."""
    result["recording"] = await _recordings(stack, api, session_id)
    page = mgr.page
    await page.reload()
    await page.wait_for_function(
        "() => document.querySelectorAll('#recordings .recording video').length > 0"
        " || /no recording|could not/.test(document.getElementById('recording-state').textContent)",
        timeout=30000,
    )
    try:
        await page.wait_for_function(
            "() => [...document.querySelectorAll('#recordings video')].every((v) => v.readyState >= 1 || v.error)",
            timeout=20000,
        )
    except Exception:
        result["playback_wait_timed_out"] = True
    result["page_recordings"] = await page.evaluate(RECORDING_VIDEOS)
    # Press play on each one (muted: no user gesture in a headless run) and see time move.
    result["page_playback"] = await page.evaluate(
        """async () => Promise.all([...document.querySelectorAll('#recordings video')].map(async (v) => {
             v.muted = true;
             try { await v.play(); } catch (e) { return {error: String(e)}; }
             await new Promise((r) => setTimeout(r, 2000));
             const out = {currentTime: v.currentTime, width: v.videoWidth, height: v.videoHeight};
             v.pause();
             return out;
           }))"""
    )
    await page.evaluate("() => document.querySelectorAll('#recordings video').forEach((v) => { v.currentTime = 1.5; })")
    await asyncio.sleep(1.0)
    await mgr.shot(stack.work, "11-console-finished-recordings", shots)


async def _run(stack: Stack, camera: Path, result: dict[str, Any], *, still: bool) -> None:
    shots: list[str] = []
    result["screenshots"] = shots
    started = time.monotonic()
    async with async_playwright() as playwright, httpx.AsyncClient(base_url=stack.base, timeout=30.0) as api:
        customer_browser = await _browser(playwright, camera)
        manager_browser = await _browser(playwright, None)
        cust_ctx = await _context(customer_browser, stack, stack.customers[0].cookie, PHONE)
        mgr_ctx = await _context(manager_browser, stack, stack.managers[0].cookie, DESK)
        cust = Watched("customer", await cust_ctx.new_page(), started)
        mgr = Watched("manager", await mgr_ctx.new_page(), started)
        try:
            session_id, accepted = await _queue_and_accept(stack, cust, mgr, result, shots)
            await _media(stack, cust, mgr, accepted, result, shots)
            await _liveness(stack, cust, mgr, result, shots)
            await _decide(stack, cust, mgr, result, shots, expect_refusal=still)
            result["session"] = (
                await api.get(f"/api/video/sessions/{session_id}", headers=stack.managers[0].bearer)
            ).json()
            await _playback(stack, api, mgr, session_id, result, shots)
        except Exception as exc:
            result["failure"] = f"{type(exc).__name__}: {exc}"
            for watched in (cust, mgr):
                with_suffix = f"zz-failure-{watched.name}"
                try:
                    await watched.shot(stack.work, with_suffix, shots)
                    result[f"{watched.name}_call_at_failure"] = await watched.call_state()
                except Exception as shot_error:  # the page itself may be gone
                    result[f"{watched.name}_shot_error"] = str(shot_error)
        finally:
            for watched in (cust, mgr):
                result[f"{watched.name}_console"] = watched.console[-80:]
                result[f"{watched.name}_failed_requests"] = watched.failed_requests
                result[f"{watched.name}_signalling"] = [
                    [round(t, 2), m.get("type"), m.get("phase") or m.get("error") or m.get("present")]
                    for t, m in watched.frames
                    if m.get("type") != "analysis"
                ]
            await customer_browser.close()
            await manager_browser.close()


async def scenario_browser_session(work: Path) -> dict[str, Any]:
    result: dict[str, Any] = {}
    async with platform(work, customers=1, managers=1) as stack:
        try:
            await _run(stack, REAL_Y4M, result, still=False)
        finally:
            result["server_log"] = server_log(stack, 80)
    return result


async def scenario_browser_still(work: Path) -> dict[str, Any]:
    result: dict[str, Any] = {}
    camera = await asyncio.to_thread(still_y4m, work)
    async with platform(work, customers=1, managers=1) as stack:
        try:
            await _run(stack, camera, result, still=True)
        finally:
            result["server_log"] = server_log(stack, 80)
    return result


SCENARIOS: dict[str, Callable[[Path], Coroutine[Any, Any, dict[str, Any]]]] = {
    "browser_session": scenario_browser_session,
    "browser_still": scenario_browser_still,
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
    result["elapsed_s"] = round(time.monotonic() - started, 1)
    args.out.write_text(json.dumps(result, default=str))
    os.sync()


if __name__ == "__main__":
    main()
