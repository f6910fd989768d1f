"""Liveness: is a person in front of the camera, not a photo or a replay?

Two checks over a sequence of frames of the one face, judged from its 68 landmarks (and, for the
passive check, also from optical flow inside the face):

* **Passive** - a photo held to the camera or replayed as a video can be moved, zoomed, tilted and
  re-lit, but its face does not change shape. Two measures from :mod:`kyc.face.motion` must
  both show a face moving like a face: landmark deformation around the mouth, eyelids and brows
  (after removing any rigid motion), and optical-flow non-planarity (a flat picture moves as one
  homography, however it is tilted). Several faces, a face too small, too short a clip, or a face
  that jumps between frames (a cut or another person) are refused first.
* **Active** - random challenges (blink, turn left, turn right), at least two per session in random
  order, each within a time window: blinks from the eye aspect ratio (EAR) closing and reopening,
  turns from head yaw estimated with solvePnP against a generic 3D face. This defeats a replayed
  *video* of the customer, which the passive check cannot tell from a live one.

``observe`` (one frame -> measurements) is a plain picklable function for the process pool; the
judging functions only need the list of observations, so any frame source works.
"""

from __future__ import annotations

import itertools
import math
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from kyc.face.detect import Box, DetectionConfig, detect_boxes, landmarks68
from kyc.face.errors import FaceError, FaceTooSmall, MultipleFaces, NoFace
from kyc.face.frames import TimedFrame, video_frames
from kyc.face.imageio import from_array
from kyc.face.motion import eye_distance, face_patch, flow_nonplanarity, landmark_motion

_RIGHT_EYE, _LEFT_EYE = list(range(36, 42)), list(range(42, 48))  # image-left eye, image-right eye
# Generic head (mm) for solvePnP: nose tip, chin, outer eye corners, mouth corners; x to the image
# right, y up, z towards the camera.
_HEAD = np.array(
    [(0, 0, 0), (0, -330, -65), (-225, 170, -135), (225, 170, -135), (-150, -150, -125), (150, -150, -125)],
    dtype=np.float64,
) * np.array([1.0, -1.0, -1.0])  # -> camera axes
_HEAD_IDX = [30, 8, 36, 45, 48, 54]


@dataclass(frozen=True)
class LivenessConfig:
    """Thresholds. The motion thresholds sit between what was measured here: live recordings score
    0.032-0.034 (deformation) and 0.025-0.028 (flow); still-photo replays, moved, zoomed, noisy and
    tilted, at most 0.0105 (deformation, untilted) and 0.0087 (flow, any tilt)."""

    min_face_px: int = 64
    secondary_ratio: float = 0.5
    min_duration: float = 2.0
    min_observations: int = 10
    min_face_fraction: float = 0.8
    max_jump: float = 0.5  # centre displacement between consecutive observations, in face sizes
    smoothing_s: float = 0.2
    min_motion: float = 0.015  # landmark deformation, in eye distances
    flow_gap_s: float = 0.12
    min_flow: float = 0.014  # optical-flow residual off the best homography, in eye distances
    blink_closed: float = 0.65  # EAR below this fraction of the open-eye level = closed
    blink_open: float = 0.85
    min_open_ear: float = 0.18
    turn_degrees: float = 20.0
    turn_frames: int = 2

    def detection(self) -> DetectionConfig:
        return DetectionConfig(min_face_px=self.min_face_px, secondary_ratio=self.secondary_ratio)


DEFAULT_LIVENESS = LivenessConfig()


@dataclass(frozen=True)
class Observation:
    t: float
    box: Box
    landmarks: npt.NDArray[np.float32]
    ear: float
    yaw: float
    patch: npt.NDArray[np.uint8]  # 160x160 grey face patch for optical flow
    patch_points: npt.NDArray[np.float64]  # the landmarks in patch coordinates


@dataclass(frozen=True)
class Missing:
    t: float
    reason: str


@dataclass(frozen=True)
class LivenessResult:
    live: bool
    reason: str
    metrics: dict[str, float] = field(default_factory=dict)

    def as_public(self) -> dict[str, object]:
        return {"live": self.live, "reason": self.reason}


def eye_aspect_ratio(landmarks: npt.ArrayLike) -> float:
    """Mean EAR of both eyes (Soukupova & Cech 2016): eyelid gap over eye width, ~0.3 open, <0.15 shut."""
    pts = np.asarray(landmarks, dtype=np.float64)
    ratios = []
    for idx in (_RIGHT_EYE, _LEFT_EYE):
        p = pts[idx]
        gap = np.linalg.norm(p[1] - p[5]) + np.linalg.norm(p[2] - p[4])
        ratios.append(gap / (2.0 * max(float(np.linalg.norm(p[0] - p[3])), 1e-6)))
    return float(np.mean(ratios))


def head_yaw(landmarks: npt.ArrayLike, frame_shape: Sequence[int]) -> float:
    """Head yaw in degrees; positive when the nose points to the image's right (the subject's left
    on an unmirrored camera). Pinhole camera with focal length = frame width, no distortion."""
    pts = np.asarray(landmarks, dtype=np.float64)[_HEAD_IDX]
    h, w = frame_shape[0], frame_shape[1]
    camera = np.array([[w, 0, w / 2], [0, w, h / 2], [0, 0, 1]], dtype=np.float64)
    ok, rvec, _ = cv2.solvePnP(_HEAD, pts, camera, None, flags=cv2.SOLVEPNP_ITERATIVE)
    if not ok:
        return float("nan")
    rotation, _ = cv2.Rodrigues(rvec)
    nose = -rotation[:, 2]  # the model's nose direction (0, 0, -1) in camera axes
    return float(math.degrees(math.atan2(nose[0], -nose[2])))


def observe(t: float, frame: npt.ArrayLike, config: LivenessConfig = DEFAULT_LIVENESS) -> Observation | Missing:
    """Measurements of the single face in one frame, or why there is none (picklable, for the pool)."""
    image = from_array(frame)
    try:
        boxes = detect_boxes(image, config.detection())
        if not boxes:
            raise NoFace("no face")
        main = boxes[0]
        if any(b.size >= config.secondary_ratio * main.size for b in boxes[1:]):
            raise MultipleFaces("several faces")
        if main.size < config.min_face_px:
            raise FaceTooSmall("face too small")
    except FaceError as exc:
        return Missing(t, exc.code)
    points = landmarks68(image, main)
    patch, patch_points = face_patch(image, points)
    return Observation(t, main, points, eye_aspect_ratio(points), head_yaw(points, image.shape), patch, patch_points)


def observe_all(frames: Iterable[TimedFrame], config: LivenessConfig = DEFAULT_LIVENESS) -> list[Observation | Missing]:
    return [observe(t, frame, config) for t, frame in frames]


def _vertical_scale(landmarks: npt.ArrayLike) -> float:
    """Nose bridge length over eye distance: shrinks with vertical foreshortening, not with blinks."""
    pts = np.asarray(landmarks, dtype=np.float64)
    return float(np.linalg.norm(pts[27] - pts[30]) / max(eye_distance(pts), 1e-6))


def blink_times(observations: Sequence[Observation], config: LivenessConfig = DEFAULT_LIVENESS) -> list[float]:
    """Times of open -> closed -> open eye sequences, relative to the open-eye EAR (80th percentile).

    The EAR is first corrected for vertical foreshortening (a photo tilted back squeezes the eyes
    and the nose alike; a blink closes only the eyes), and eyes whose open level is below
    ``min_open_ear`` (squinting, looking down, a photo of closed eyes) never count as blinking.
    """
    if len(observations) < 3:
        return []
    squeeze = np.array([_vertical_scale(o.landmarks) for o in observations])
    ears = np.array([o.ear for o in observations]) / (squeeze / max(float(np.median(squeeze)), 1e-6))
    open_level = float(np.quantile(ears, 0.8))
    if open_level < config.min_open_ear:
        return []
    blinks: list[float] = []
    state = "closed" if ears[0] < config.blink_open * open_level else "open"
    closed_at = 0.0
    for obs, ear in zip(observations, ears, strict=True):
        if state == "open" and ear <= config.blink_closed * open_level:
            state, closed_at = "closing", obs.t
        elif state == "closing" and ear >= config.blink_open * open_level:
            blinks.append(closed_at)
            state = "open"
        elif state == "closed" and ear >= config.blink_open * open_level:
            state = "open"
    return blinks


def track_breaks(observations: Sequence[Observation], config: LivenessConfig = DEFAULT_LIVENESS) -> int:
    """Consecutive observations whose face centre moved more than ``max_jump`` face sizes."""
    breaks = 0
    for a, b in itertools.pairwise(observations):
        ca = np.array([(a.box.left + a.box.right) / 2, (a.box.top + a.box.bottom) / 2])
        cb = np.array([(b.box.left + b.box.right) / 2, (b.box.top + b.box.bottom) / 2])
        if np.linalg.norm(ca - cb) > config.max_jump * max(a.box.size, b.box.size):
            breaks += 1
    return breaks


def passive_check(items: Sequence[Observation | Missing], config: LivenessConfig = DEFAULT_LIVENESS) -> LivenessResult:
    """The passive verdict over a whole sequence (see the module docstring)."""
    seen = [o for o in items if isinstance(o, Observation)]
    missing = [m for m in items if isinstance(m, Missing)]
    metrics: dict[str, float] = {"frames": float(len(items)), "face_frames": float(len(seen))}
    if not items:
        return LivenessResult(False, "no frames", metrics)
    if len(seen) < max(config.min_observations, config.min_face_fraction * len(items)):
        counts = {r: sum(1 for m in missing if m.reason == r) for r in {m.reason for m in missing}}
        worst = max(counts, key=lambda r: counts[r]) if counts else "no_face"
        return LivenessResult(
            False, f"no single usable face in {len(missing)} of {len(items)} frames (mostly {worst})", metrics
        )
    duration = seen[-1].t - seen[0].t
    metrics["duration_s"] = duration
    if duration < config.min_duration:
        return LivenessResult(False, f"only {duration:.1f} s with a face, {config.min_duration:.1f} s needed", metrics)
    breaks = track_breaks(seen, config)
    metrics["track_breaks"] = float(breaks)
    if breaks:
        return LivenessResult(False, "the face jumped between frames (a cut or another person)", metrics)
    times = [o.t for o in seen]
    motion = landmark_motion([o.landmarks for o in seen], times, config.smoothing_s)
    flow = flow_nonplanarity([o.patch for o in seen], [o.patch_points for o in seen], times, config.flow_gap_s)
    metrics.update(motion=motion, flow=flow, blinks=float(len(blink_times(seen, config))))
    measured = f"deformation {motion:.4f}, flow {flow:.4f}, {int(metrics['blinks'])} blinks"
    if motion < config.min_motion or flow < config.min_flow:
        return LivenessResult(False, f"no natural facial movement ({measured}): a still photo or a replay", metrics)
    return LivenessResult(True, f"natural facial movement ({measured})", metrics)


def check_video(path: str | Path, config: LivenessConfig = DEFAULT_LIVENESS, max_fps: float = 15.0) -> LivenessResult:
    """Passive liveness of a video file (picklable; what ``kyc liveness VIDEO`` runs)."""
    return passive_check(observe_all(video_frames(path, max_fps=max_fps), config), config)


class Challenge(StrEnum):
    BLINK = "blink"
    TURN_LEFT = "turn_left"
    TURN_RIGHT = "turn_right"


@dataclass(frozen=True)
class ChallengeStep:
    kind: Challenge
    start: float  # seconds from the start of the session
    end: float


@dataclass(frozen=True)
class StepResult:
    step: ChallengeStep
    passed: bool
    reason: str


def draw_challenges(
    count: int = 2, window: float = 4.0, pause: float = 1.0, start: float = 1.0, rng: secrets.SystemRandom | None = None
) -> tuple[ChallengeStep, ...]:
    """``count`` (2-3) different challenges in random order, each with its own time window."""
    if not 2 <= count <= len(Challenge):
        raise ValueError(f"between 2 and {len(Challenge)} challenges per session")
    kinds = (rng or secrets.SystemRandom()).sample(list(Challenge), count)
    steps, t = [], start
    for kind in kinds:
        steps.append(ChallengeStep(kind, t, t + window))
        t += window + pause
    return tuple(steps)


def judge_step(
    step: ChallengeStep,
    observations: Sequence[Observation],
    config: LivenessConfig = DEFAULT_LIVENESS,
    mirrored: bool = False,
) -> StepResult:
    """Was the challenge performed inside its window? Turns are measured from the pose just before."""
    inside = [o for o in observations if step.start <= o.t <= step.end]
    if len(inside) < 3:
        return StepResult(step, False, "too few frames with a face in the window")
    if step.kind is Challenge.BLINK:
        context = [o for o in observations if step.start - 1.0 <= o.t <= step.end]
        hits = [t for t in blink_times(context, config) if t >= step.start]
        return StepResult(step, bool(hits), "blink seen" if hits else "no blink in the window")
    before = [o.yaw for o in observations if step.start - 1.0 <= o.t <= step.start + 0.3 and math.isfinite(o.yaw)]
    baseline = float(np.median(before)) if before else float(np.median([o.yaw for o in inside]))
    sign = 1.0 if step.kind is Challenge.TURN_LEFT else -1.0
    sign = -sign if mirrored else sign
    turned = [sign * (o.yaw - baseline) >= config.turn_degrees for o in inside]
    run = best = 0
    for flag in turned:
        run = run + 1 if flag else 0
        best = max(best, run)
    passed = best >= config.turn_frames
    peak = max(sign * (o.yaw - baseline) for o in inside)
    if passed:
        reason = f"turned {peak:.0f} degrees"
    elif peak >= config.turn_degrees:
        reason = f"turned {peak:.0f} degrees for {best} frame(s), {config.turn_frames} in a row needed"
    else:
        reason = f"turned {peak:.0f} degrees, {config.turn_degrees:.0f} needed"
    return StepResult(step, passed, reason)


def judge_session(
    plan: Sequence[ChallengeStep],
    items: Sequence[Observation | Missing],
    config: LivenessConfig = DEFAULT_LIVENESS,
    mirrored: bool = False,
) -> tuple[LivenessResult, list[StepResult]]:
    """Every challenge performed in its window *and* the passive check passed."""
    seen = [o for o in items if isinstance(o, Observation)]
    steps = [judge_step(step, seen, config, mirrored) for step in plan]
    failed = [s for s in steps if not s.passed]
    if failed:
        first = failed[0]
        return LivenessResult(False, f"challenge {first.step.kind.value} failed: {first.reason}"), steps
    passive = passive_check(items, config)
    return passive, steps
