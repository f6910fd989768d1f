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
import contextlib
import hashlib
import json
import os
import re
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import httpx
from playwright.async_api import Browser, BrowserContext, Dialog, Page, Playwright, async_playwright

from app.middleware import SESSION_COOKIE
from tests.integration.video.app_stack import Stack, platform, server_log
from tests.integration.video.media_peers import FIXTURES
from tests.integration.video.media_scenario import PEER_NETWORKS
from video.media.netns import DEFAULT_VETH, set_link

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
        self.sent: list[tuple[float, str]] = []
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

        def sent(payload: str | bytes) -> None:
            try:
                message = json.loads(payload)
            except ValueError:
                return
            if isinstance(message, dict):
                self.sent.append((time.monotonic() - self.started, str(message.get("type"))))

        ws.on("framereceived", received)
        ws.on("framesent", sent)

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


# --- a network blip and a dropped WebSocket (issue 12: robustness) ---------------------------------

BLIP_S = 8.0
"""Least time the peers' veth end stays down: Chromium reports ICE ``disconnected`` ~5 s into it."""
BLIP_MAX_S = 25.0
"""The link stays down until each page counted an ICE restart (the path under test), at most this."""
BLIP_LINKS = (DEFAULT_VETH.peer_if, DEFAULT_VETH.janus_if)
"""Both ends of the pair: the browsers also gather host candidates on Janus's own address
(192.0.2.1, reached over loopback inside the namespace), which outlive the peers' end alone."""
RECOVER_S = 20.0
RECOVER_FRAMES = 15

SAMPLE = """() => { const c = window.videoCallClient; const s = window.videoCall || {};
  const ice = (pc) => (pc ? pc.iceConnectionState : null);
  const conn = document.getElementById('conn-status');
  return {ws: s.wsState, pub: s.publisherState, sub: s.subscriberState,
          pubIce: ice(c && c.publisher), subIce: ice(c && c.subscriber),
          frames: s.remoteFrames, iceRestarts: s.iceRestarts, reconnects: s.reconnects,
          session: s.sessionState, peer: s.peerPresent, conn: conn ? conn.textContent : null}; }"""


SELECTED_PAIRS = """async () => {
  const c = window.videoCallClient; const out = {};
  for (const kind of ['publisher', 'subscriber']) {
    const pc = c && c[kind];
    if (!pc) { out[kind] = null; continue; }
    const stats = await pc.getStats(); const byId = {}; let pair = null;
    stats.forEach((r) => { byId[r.id] = r; });
    stats.forEach((r) => {
      if (r.type === 'transport' && r.selectedCandidatePairId) pair = byId[r.selectedCandidatePairId];
    });
    const at = (id) => (byId[id] ? `${byId[id].address}:${byId[id].port}` : null);
    out[kind] = pair ? `${at(pair.localCandidateId)} -> ${at(pair.remoteCandidateId)}` : null;
  }
  return out;
}"""


async def _selected_pairs(pages: tuple[Watched, ...]) -> dict[str, Any]:
    """Each page's ICE pair in use (local -> remote), per connection."""
    return {w.name: await w.page.evaluate(SELECTED_PAIRS) for w in pages}


class Timeline:
    """Samples both pages' call state twice a second: what the connections went through."""

    def __init__(self, pages: list[Watched], started: float) -> None:
        self.pages = pages
        self.started = started
        self.samples: list[dict[str, Any]] = []
        self._task: asyncio.Task[None] | None = None

    def now(self) -> float:
        return round(time.monotonic() - self.started, 2)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            for watched in self.pages:
                try:
                    sample = await watched.page.evaluate(SAMPLE)
                except Exception as exc:  # a page navigating: note it and go on
                    sample = {"error": type(exc).__name__}
                self.samples.append({"t": self.now(), "who": watched.name, **sample})
            await asyncio.sleep(0.5)

    def seen(self, who: str, key: str, since: float, until: float | None = None) -> list[Any]:
        """The distinct values of ``key`` on ``who``'s page between two moments, in order."""
        values: list[Any] = []
        for s in self.samples:
            if s["who"] != who or s["t"] < since or (until is not None and s["t"] > until) or key not in s:
                continue
            if not values or values[-1] != s[key]:
                values.append(s[key])
        return values

    def changes(self, since: float, until: float | None = None) -> list[list[Any]]:
        """Each page's state changes (not the frame counter) between two moments."""
        keys = ("ws", "pub", "sub", "pubIce", "subIce", "iceRestarts", "reconnects", "conn")
        last: dict[str, tuple[Any, ...]] = {}
        out: list[list[Any]] = []
        for s in self.samples:
            if s["t"] < since or (until is not None and s["t"] > until):
                continue
            state = tuple(s.get(k) for k in keys)
            if last.get(s["who"]) != state:
                last[s["who"]] = state
                out.append([s["t"], s["who"], dict(zip(keys, state, strict=True))])
        return out


async def _frames(watched: Watched) -> int:
    frames: int = await watched.page.evaluate("() => window.videoCall.remoteFrames")
    return frames


async def _frames_flow_again(watched: Watched, since: float, timeout_s: float = RECOVER_S) -> float | None:
    """Seconds from ``since`` until the page decoded RECOVER_FRAMES more frames than its lowest count
    (a new receiving connection counts from zero); ``None`` if it never did within the timeout."""
    lowest: int | None = None
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        frames = await _frames(watched)
        lowest = frames if lowest is None else min(lowest, frames)
        if frames - lowest >= RECOVER_FRAMES:
            return round(time.monotonic() - since, 2)
        await asyncio.sleep(0.25)
    return None


async def _session_state(stack: Stack, api: httpx.AsyncClient, session_id: int) -> dict[str, Any]:
    body = (await api.get(f"/api/video/sessions/{session_id}", headers=stack.managers[0].bearer)).json()
    return {"state": body.get("state"), "endReason": body.get("endReason")}


async def _ice_restarts(watched: Watched) -> int:
    count: int = await watched.page.evaluate("() => window.videoCall.iceRestarts")
    return count


async def _network_blip(
    stack: Stack,
    api: httpx.AsyncClient,
    pages: tuple[Watched, Watched],
    timeline: Timeline,
    session_id: int,
    result: dict[str, Any],
    shots: list[str],
) -> None:
    """The peers' veth end goes down (media only: the WebSockets use loopback), then up again."""
    cust, mgr = pages
    blip: dict[str, Any] = {"links": list(BLIP_LINKS)}
    result["blip"] = blip
    blip["pairs_before"] = await _selected_pairs(pages)
    blip["frames_before"] = {w.name: await _frames(w) for w in pages}
    for link in BLIP_LINKS:
        set_link(link, up=False)
    down = time.monotonic()
    down_t = timeline.now()
    blip["down_at_s"] = down_t
    await asyncio.sleep(2.0)
    stalled_from = {w.name: await _frames(w) for w in pages}
    # Down for BLIP_S at least, and until both pages tried an ICE restart and a little more:
    # the restarts go out while the network is still away, the hard case.
    restarted_at: float | None = None
    while time.monotonic() - down < BLIP_MAX_S:
        await asyncio.sleep(0.5)
        if restarted_at is None and all([await _ice_restarts(w) >= 1 for w in pages]):
            restarted_at = time.monotonic()
            blip["restarted_after_s"] = round(restarted_at - down, 2)
        if time.monotonic() - down >= BLIP_S and restarted_at is not None and time.monotonic() - restarted_at >= 2:
            break
    await cust.shot(stack.work, "20-customer-during-blip", shots)
    await mgr.shot(stack.work, "21-console-during-blip", shots)
    blip["frames_while_down"] = {w.name: await _frames(w) - stalled_from[w.name] for w in pages}
    blip["restarted_while_down"] = restarted_at is not None
    blip["conn_while_down"] = {w.name: await w.page.text_content("#conn-status") for w in pages}
    for link in BLIP_LINKS:
        set_link(link, up=True)
    up = time.monotonic()
    up_t = timeline.now()
    blip["down_s"] = round(up - down, 2)
    recovered = await asyncio.gather(*(_frames_flow_again(w, up) for w in pages))
    blip["frames_again_after_up_s"] = {w.name: r for w, r in zip(pages, recovered, strict=True)}
    blip["frames_again_after_down_s"] = {
        w.name: (round(r + up - down, 2) if r is not None else None) for w, r in zip(pages, recovered, strict=True)
    }
    await asyncio.sleep(1.0)
    blip["session_after"] = await _session_state(stack, api, session_id)
    blip["calls_after"] = {w.name: await w.call_state() for w in pages}
    blip["pairs_after"] = await _selected_pairs(pages)
    blip["receives_after"] = {w.name: await _receive_fps(w.page, 3.0) for w in pages}
    for who in ("customer", "manager"):
        blip[f"{who}_ice_states"] = {
            "publisher": timeline.seen(who, "pubIce", down_t),
            "subscriber": timeline.seen(who, "subIce", down_t),
        }
        blip[f"{who}_conn_shown"] = timeline.seen(who, "conn", down_t)
    blip["changes"] = timeline.changes(down_t - 1.0)
    # The face analysis of the customer's video goes on after the blip (its own subscription).
    await asyncio.sleep(4.0)
    blip["analysis"] = [
        [round(t, 2), m.get("framesAnalysed")]
        for t, m in mgr.frames
        if m.get("type") == "analysis" and t >= down_t - 2.0
    ]
    blip["up_at_s"] = up_t
    await cust.shot(stack.work, "22-customer-after-blip", shots)
    await mgr.shot(stack.work, "23-console-after-blip", shots)


async def _socket_drop(
    stack: Stack,
    api: httpx.AsyncClient,
    pages: tuple[Watched, Watched],
    timeline: Timeline,
    session_id: int,
    result: dict[str, Any],
    shots: list[str],
) -> None:
    """The customer's WebSocket closes under the page: it reconnects, says hello again, republishes."""
    cust, mgr = pages
    drop: dict[str, Any] = {}
    result["socket_drop"] = drop
    hellos = len(cust.messages("hello"))
    offers = {w.name: len(w.messages("offer")) for w in pages}
    reconnects = (await cust.call_state())["reconnects"]
    drop_t = timeline.now()
    dropped = time.monotonic()
    await cust.page.evaluate("() => window.videoCallClient.ws.close()")
    await cust.page.wait_for_function(
        f"() => window.videoCall.reconnects > {reconnects} && window.videoCall.wsState === 'open'", timeout=15000
    )
    drop["socket_open_again_s"] = round(time.monotonic() - dropped, 2)
    # Each page gets a fresh subscription offer (the customer's own on reconnecting; the
    # manager's once the customer's new publisher is up): frames are counted on it.
    recovered = await asyncio.gather(*(_offer_then_frames(w, offers[w.name], dropped) for w in pages))
    drop["frames_again_s"] = {w.name: r for w, r in zip(pages, recovered, strict=True)}
    await asyncio.sleep(1.0)
    drop["hellos"] = len(cust.messages("hello")) - hellos
    drop["offers"] = {w.name: len(w.messages("offer")) - offers[w.name] for w in pages}
    drop["manager_peer_messages"] = [m.get("present") for t, m in mgr.frames if m.get("type") == "peer" and t >= drop_t]
    drop["session_after"] = await _session_state(stack, api, session_id)
    drop["calls_after"] = {w.name: await w.call_state() for w in pages}
    drop["receives_after"] = {w.name: await _receive_fps(w.page, 3.0) for w in pages}
    drop["changes"] = timeline.changes(drop_t - 0.5)
    await cust.shot(stack.work, "30-customer-after-socket-drop", shots)
    await mgr.shot(stack.work, "31-console-after-socket-drop", shots)


async def _offer_then_frames(watched: Watched, offers_before: int, since: float) -> float | None:
    deadline = time.monotonic() + RECOVER_S
    while len(watched.messages("offer")) <= offers_before:
        if time.monotonic() > deadline:
            return None
        await asyncio.sleep(0.1)
    return await _frames_flow_again(watched, since, timeout_s=max(1.0, deadline - time.monotonic()))


async def _end_call(
    stack: Stack, api: httpx.AsyncClient, pages: tuple[Watched, Watched], session_id: int, result: dict[str, Any]
) -> None:
    """The manager ends the call from the console (confirming the dialog); both pages see it."""
    cust, mgr = pages

    async def confirm(dialog: Dialog) -> None:
        await dialog.accept()

    mgr.page.once("dialog", confirm)
    async with mgr.page.expect_response(lambda r: r.url.endswith(f"/sessions/{session_id}/end")) as ended:
        await mgr.page.click("#end")
    result["end_status"] = (await ended.value).status
    await cust.page.wait_for_function("() => window.videoCall.sessionState === 'ended'", timeout=20000)
    result["ended_reasons"] = {w.name: [m.get("reason") for m in w.messages("ended")] for w in pages}
    result["session_end"] = await _session_state(stack, api, session_id)
    result["customer_call_after"] = await cust.call_state()


async def _run_blip(stack: Stack, result: dict[str, Any]) -> None:
    shots: list[str] = []
    result["screenshots"] = shots
    started = time.monotonic()
    async with async_playwright() as playwright, httpx.AsyncClient(base_url=stack.base, timeout=30.0) as api:
        customer_browser = await _browser(playwright, REAL_Y4M)
        manager_browser = await _browser(playwright, None)
        cust_ctx = await _context(customer_browser, stack, stack.customers[0].cookie, PHONE)
        mgr_ctx = await _context(manager_browser, stack, stack.managers[0].cookie, DESK)
        cust = Watched("customer", await cust_ctx.new_page(), started)
        mgr = Watched("manager", await mgr_ctx.new_page(), started)
        pages = (cust, mgr)
        timeline = Timeline([cust, mgr], started)
        try:
            session_id, accepted = await _queue_and_accept(stack, cust, mgr, result, shots)
            timeline.start()
            for watched in pages:
                await watched.page.wait_for_function("() => window.videoCall.remoteFrames > 30", timeout=45000)
            result["both_receive_s"] = round(time.monotonic() - accepted, 2)
            result["calls_before"] = {w.name: await w.call_state() for w in pages}
            result["receives_before"] = {w.name: await _receive_fps(w.page, 3.0) for w in pages}
            await cust.shot(stack.work, "10-customer-before-blip", shots)
            await mgr.shot(stack.work, "11-console-before-blip", shots)
            await _network_blip(stack, api, pages, timeline, session_id, result, shots)
            await _socket_drop(stack, api, pages, timeline, session_id, result, shots)
            await _end_call(stack, api, pages, session_id, result)
        except Exception as exc:
            result["failure"] = f"{type(exc).__name__}: {exc}"
            for watched in pages:
                try:
                    await watched.shot(stack.work, f"zz-failure-{watched.name}", shots)
                    result[f"{watched.name}_call_at_failure"] = await watched.call_state()
                except Exception as shot_error:  # the page itself may be gone
                    result[f"{watched.name}_shot_error"] = str(shot_error)
        finally:
            await timeline.stop()
            for link in BLIP_LINKS:
                with contextlib.suppress(Exception):
                    set_link(link, up=True)
            result["timeline_changes"] = timeline.changes(0.0)
            for watched in pages:
                result[f"{watched.name}_console"] = watched.console[-80:]
                result[f"{watched.name}_failed_requests"] = watched.failed_requests
                result[f"{watched.name}_signalling"] = [
                    [round(t, 2), m.get("type"), m.get("phase") or m.get("error") or m.get("present")]
                    for t, m in watched.frames
                    if m.get("type") != "analysis"
                ]
                result[f"{watched.name}_sent"] = [[round(t, 2), kind] for t, kind in watched.sent]
                result[f"{watched.name}_offers"] = [
                    [round(t, 2), "restart" if m.get("restart") else "new"]
                    for t, m in watched.frames
                    if m.get("type") == "offer"
                ]
                result[f"{watched.name}_errors"] = [
                    [round(t, 2), m.get("error"), m.get("message")]
                    for t, m in watched.frames
                    if m.get("type") == "error"
                ]
            await customer_browser.close()
            await manager_browser.close()


async def scenario_browser_blip(work: Path) -> dict[str, Any]:
    result: dict[str, Any] = {}
    # The dropped socket's participant is away for a moment: a grace far longer than that.
    async with platform(work, customers=1, managers=1, BRANCHLESS_VIDEO_RECONNECT_GRACE_S="30") as stack:
        try:
            await _run_blip(stack, result)
        finally:
            result["server_log"] = server_log(stack, 120)
    return result


SCENARIOS: dict[str, Callable[[Path], Coroutine[Any, Any, dict[str, Any]]]] = {
    "browser_session": scenario_browser_session,
    "browser_still": scenario_browser_still,
    "browser_blip": scenario_browser_blip,
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
