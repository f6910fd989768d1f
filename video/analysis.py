"""What the server makes of the customer's sampled video: face match, liveness check, stills.

Frames come from the aiortc analysis peer (a worker process, ``video.media.analysis_worker``)
as JPEG at 2-5 fps. Face work runs in the CPU pool through kyc/ (``kyc.service.judge``),
never on the event loop, and never more than one job per session at a time: a frame that
arrives while the previous batch is judged is kept for stills but not analysed.

- First verdict: the first ``FIRST_VERDICT_FRAMES`` frames go through kyc/ as a case
  submission (stored as evidence; the case moves to face_matched, or flagged on a clear
  mismatch), repeated with fresh frames until a verdict is reached.
- Monitoring: afterwards, every ``monitor_every_s`` the last three frames are checked
  against the portrait, so the manager sees the live distance (nothing stored).
- Liveness check (started by the manager): fresh challenges are drawn and prompted on the
  customer's screen; every frame of the window is judged together by kyc/ (active
  challenges and the passive check), and the outcome is ``passed``, ``incomplete``
  (no replay detected but the prompts were not all performed) or ``failed``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from app.cpu import run_cpu
from app.db import transaction
from kyc import biometrics
from kyc import service as kyc_service
from kyc.states import OPEN, CaseState
from kyc.tables import KycCase
from video import service
from video.media.analysis_peer import SampledFrame

logger = logging.getLogger(__name__)

FIRST_VERDICT_FRAMES = 4
"""At 3 fps the first verdict has its frames 1 s after the video arrives (3rd best of 4 decides)."""
MONITOR_FRAMES = 3
LIVENESS_TAIL_S = 0.7
"""Frames keep counting this long after the last challenge window (the peer's lag)."""

Notify = Callable[[dict[str, Any]], Awaitable[None]]


class SessionAnalysis:
    """Per-session analysis state, fed by the hub with every sampled frame."""

    def __init__(self, session_id: int, case_id: int, notify: Notify, *, monitor_every_s: float = 5.0) -> None:
        self.session_id = session_id
        self.case_id = case_id
        self._notify = notify
        self.monitor_every_s = monitor_every_s
        self.recent: deque[tuple[float, bytes]] = deque(maxlen=15)
        self._batch: list[kyc_service.Frame] = []
        self.video_at: float | None = None
        self.media_up_at: float | None = None
        """When Janus reported the customer's PeerConnection up (set by the hub)."""
        self.verdict_at: float | None = None
        self.frames_analysed = 0
        self.distance: float | None = None
        self.threshold: float | None = None
        self.case_state = ""
        self._last_monitor = 0.0
        self._busy = False
        self._liveness: dict[str, Any] | None = None
        self._liveness_frames: list[kyc_service.Frame] = []
        self._tasks: set[asyncio.Task[None]] = set()

    # --- feeding -----------------------------------------------------------------------

    def feed(self, frame: SampledFrame) -> None:
        t = frame.received_at
        self.recent.append((t, frame.data))
        if self.video_at is None:
            self.video_at = t
        if self._liveness is not None:
            t0 = self._liveness["t0"]
            if t >= t0:
                self._liveness_frames.append(kyc_service.Frame(frame.data, int((t - t0) * 1000)))
            if t >= self._liveness["until"] and not self._liveness.get("judging"):
                self._liveness["judging"] = True
                self._spawn(self._judge_liveness())
            return
        if self.verdict_at is None:
            self._batch.append(kyc_service.Frame(frame.data, int((t - self.video_at) * 1000)))
            if len(self._batch) >= FIRST_VERDICT_FRAMES and not self._busy:
                batch, self._batch = self._batch, []
                self._spawn(self._first_verdict(batch))
        elif t - self._last_monitor >= self.monitor_every_s and not self._busy and len(self.recent) >= MONITOR_FRAMES:
            self._last_monitor = t
            self._spawn(self._monitor([data for _, data in list(self.recent)[-MONITOR_FRAMES:]]))

    def _spawn(self, coro: Awaitable[None]) -> None:
        self._busy = True

        async def run() -> None:
            try:
                await coro
            except Exception:
                logger.exception("analysis of video session %s failed", self.session_id)
            finally:
                self._busy = False

        task = asyncio.create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    # --- face ----------------------------------------------------------------------------

    async def _case(self) -> KycCase | None:
        case = await KycCase.objects().where(KycCase.id == self.case_id).first()
        return case if case is not None and case.state in {s.value for s in OPEN} else None

    async def _first_verdict(self, batch: list[kyc_service.Frame]) -> None:
        case = await self._case()
        if case is None:
            self.verdict_at = time.time()
            return
        judged = await kyc_service.judge(case, batch)
        async with transaction():
            case = await self._case()
            if case is None:
                return
            case = await kyc_service.record_judgement(case, batch, judged)
        self.frames_analysed += len(batch)
        self.threshold = judged.threshold
        if judged.evidence_distance is not None:
            self.distance = judged.evidence_distance
            self.verdict_at = time.time()
            self._last_monitor = self.verdict_at
        self.case_state = case.state
        await self._publish()

    async def _monitor(self, frames: list[bytes]) -> None:
        case = await self._case()
        if case is None:
            return
        portrait = await kyc_service.portrait_templates(case)
        check = await run_cpu(biometrics.check_face, frames, portrait)
        self.frames_analysed += len(frames)
        self.threshold = check.threshold
        if check.distance is not None:
            self.distance = check.distance
        self.case_state = case.state
        await self._publish()

    def figures(self) -> dict[str, Any]:
        """``firstVerdictS``: from the customer's video reaching the media server (Janus's
        ``webrtcup``) to the first verdict; ``analysisStartS``: the part of it until the
        analysis peer delivered its first sampled frame."""
        first = start = None
        origin = self.media_up_at or self.video_at
        if self.verdict_at is not None and origin is not None:
            first = round(self.verdict_at - origin, 3)
        if self.video_at is not None and origin is not None:
            start = round(self.video_at - origin, 3)
        return {
            "distance": None if self.distance is None else round(self.distance, 4),
            "threshold": self.threshold,
            "matched": None if self.distance is None or self.threshold is None else self.distance <= self.threshold,
            "framesAnalysed": self.frames_analysed,
            "caseState": self.case_state,
            "firstVerdictS": first,
            "analysisStartS": start,
        }

    async def _publish(self) -> None:
        figures = self.figures()
        async with transaction():
            await service.set_analysis(self.session_id, figures)
        await self._notify({"type": "analysis", **figures})

    # --- liveness --------------------------------------------------------------------------

    async def start_liveness(self) -> dict[str, Any]:
        """Draw fresh challenges for the case and open the window; returns the message to send."""
        challenges = kyc_service.draw_challenges()
        async with transaction():
            case = await KycCase.objects().where(KycCase.id == self.case_id).first()
            if case is None or case.state not in {s.value for s in OPEN}:
                raise service.NotActive("the identity case is closed: nothing to check")
            case.challenges = challenges  # type: ignore[assignment]
            await case.save([KycCase.challenges])
        now = time.time()
        self._liveness_frames = []
        prompts = [{"kind": c["kind"], "startS": c["start"], "endS": c["end"]} for c in challenges]
        self._liveness = {
            "t0": now,
            "until": now + max(c["end"] for c in challenges) + LIVENESS_TAIL_S,
            "challenges": prompts,
        }
        state = {"phase": "running", "challenges": prompts, "startedAt": datetime.now(UTC).isoformat(), "reason": ""}
        async with transaction():
            await service.set_liveness(self.session_id, state)
        self._spawn_deadline(self._liveness["until"] + 5.0)
        return {"type": "liveness", **state}

    def _spawn_deadline(self, at: float) -> None:
        """If no frame arrives after the window (video gone), judge what there is anyway."""

        async def deadline() -> None:
            await asyncio.sleep(max(0.0, at - time.time()))
            if self._liveness is not None and not self._liveness.get("judging"):
                self._liveness["judging"] = True
                await self._judge_liveness()

        task = asyncio.create_task(deadline())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _judge_liveness(self) -> None:
        window, frames = self._liveness, self._liveness_frames
        self._liveness_frames = []
        if window is None:
            return
        challenges: list[dict[str, Any]] = []
        phase, reason = "failed", "no video arrived during the check"
        case = await self._case()
        if case is not None and frames:
            judged = await kyc_service.judge(case, frames)
            async with transaction():
                case = await self._case()
                if case is not None:
                    case = await kyc_service.record_judgement(case, frames, judged)
                    self.case_state = case.state
            challenges = [{"kind": c.kind, "passed": c.passed, "detail": c.detail} for c in judged.challenges]
            for verdict, prompt in zip(challenges, window.get("challenges", []), strict=False):
                if verdict["kind"] == prompt["kind"]:  # the prompts' windows, as docs/video-sessions.md has them
                    verdict["startS"], verdict["endS"] = prompt["startS"], prompt["endS"]
            if judged.live and judged.matched:
                phase, reason = "passed", "every prompt performed; no replay detected"
            elif not judged.passive_live:
                phase, reason = "failed", judged.passive_reason
            elif not judged.matched:
                phase, reason = "failed", "the face in the check does not match the identity portrait"
            else:
                phase, reason = "incomplete", judged.liveness_reason
            if judged.evidence_distance is not None:
                self.distance = judged.evidence_distance
        self._liveness = None
        state = {"phase": phase, "challenges": challenges, "reason": reason, "frames": len(frames)}
        async with transaction():
            await service.set_liveness(self.session_id, state)
        await self._notify({"type": "liveness", **state})
        await self._publish()

    # --- stills -----------------------------------------------------------------------------

    def latest_frame(self) -> bytes | None:
        return self.recent[-1][1] if self.recent else None


def case_is_matched(state: str) -> bool:
    return state in (CaseState.face_matched.value, CaseState.live.value, CaseState.verified.value)
