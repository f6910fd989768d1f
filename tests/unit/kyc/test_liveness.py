"""Liveness: passive motion checks on real and replayed video, and the active challenges."""

from __future__ import annotations

import math
import secrets
from dataclasses import replace

import cv2
import numpy as np
import pytest

from kyc.face import liveness as lv
from kyc.face.calibration import fixtures_dir
from kyc.face.frames import array_frames, image_frames, video_frames
from kyc.face.imageio import load_image

FIXTURES = fixtures_dir()
VIDEO = FIXTURES / "video"
PORTRAIT = FIXTURES / "images" / "lp_d13_person_portrait.jpg"


@pytest.fixture(scope="module")
def real_observations() -> list[lv.Observation | lv.Missing]:
    return lv.observe_all(video_frames(VIDEO / "lp_d13_person_real_640x480_6s.mp4", max_fps=15))


def test_real_recording_is_live(real_observations: list[lv.Observation | lv.Missing]) -> None:
    result = lv.passive_check(real_observations)
    assert result.live, result.reason
    assert result.metrics["blinks"] >= 1


def test_still_photo_replay_is_not_live() -> None:
    result = lv.check_video(VIDEO / "lp_d13_person_synthetic_still_replay_640x480_6s.mp4")
    assert not result.live
    assert "still photo" in result.reason


def test_crowd_is_not_a_single_live_subject() -> None:
    result = lv.check_video(VIDEO / "crowd_real_640x480_4s.mp4", max_fps=5)
    assert not result.live
    assert "no single usable face" in result.reason


def test_a_list_of_identical_still_images_is_not_live() -> None:
    data = PORTRAIT.read_bytes()
    result = lv.passive_check(lv.observe_all(image_frames([data] * 30, fps=10)))
    assert not result.live


def _photo_replay(seed: int, tilt: float) -> list[tuple[float, np.ndarray]]:
    """A printed photo waved at the camera: zoom, rotation, pan, perspective tilt, flicker, sensor noise."""
    rng = np.random.default_rng(seed)
    photo = cv2.resize(load_image(PORTRAIT), None, fx=0.7, fy=0.7, interpolation=cv2.INTER_AREA)
    h, w = photo.shape[:2]
    frames = []
    for i in range(45):
        t = i / 44
        matrix = cv2.getRotationMatrix2D((w / 2, h / 2), 4 * math.sin(2 * math.pi * t + seed), 1.0 + 0.15 * t)
        matrix[:, 2] += [25 * math.sin(math.pi * t), 12 * math.cos(math.pi * t)]
        homography = np.vstack([matrix, [tilt * math.sin(2 * math.pi * t), 0.5 * tilt * math.cos(2 * math.pi * t), 1]])
        warped = cv2.warpPerspective(photo, homography, (w, h), borderMode=cv2.BORDER_REFLECT)
        noisy = warped * (1 + 0.06 * math.sin(9 * t)) + rng.normal(0, 4, warped.shape)
        frames.append(np.clip(noisy, 0, 255).astype(np.uint8))
    return list(array_frames(frames, fps=15))


@pytest.mark.parametrize(("seed", "tilt"), [(0, 0.0), (1, 0.0003), (2, 0.0006)])
def test_a_moved_and_tilted_photo_is_not_live(seed: int, tilt: float) -> None:
    """Landmarks alone are fooled by a strongly tilted photo; the optical-flow check is not."""
    result = lv.passive_check(lv.observe_all(_photo_replay(seed, tilt)))
    assert not result.live, result.metrics
    assert result.metrics["blinks"] == 0


def test_too_short_or_empty_sequences_are_refused(real_observations: list[lv.Observation | lv.Missing]) -> None:
    assert not lv.passive_check([]).live
    first_second = [o for o in real_observations if o.t < 1.0]
    result = lv.passive_check(first_second)
    assert not result.live
    assert "needed" in result.reason


def test_a_cut_to_another_face_is_refused(real_observations: list[lv.Observation | lv.Missing]) -> None:
    seen = [o for o in real_observations if isinstance(o, lv.Observation)]
    shifted = [replace(o, box=replace(o.box, left=o.box.left + 400, right=o.box.right + 400)) for o in seen[40:]]
    result = lv.passive_check(seen[:40] + shifted)
    assert not result.live
    assert "jumped" in result.reason


def _project_head(yaw_degrees: float, width: int = 640, height: int = 480) -> np.ndarray:
    """68 landmarks whose pose points are a generic head turned by ``yaw_degrees`` (image-right positive)."""
    a = math.radians(-yaw_degrees)
    rotation = np.array([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]])
    points = lv._HEAD @ rotation.T + [0, 0, 1500]
    projected = points[:, :2] / points[:, 2:] * width + [width / 2, height / 2]
    landmarks = np.zeros((68, 2))
    landmarks[lv._HEAD_IDX] = projected
    return landmarks


@pytest.mark.parametrize("yaw", [-35.0, -20.0, 0.0, 15.0, 30.0])
def test_head_yaw_is_recovered_with_its_sign(yaw: float) -> None:
    landmarks = _project_head(yaw)
    assert lv.head_yaw(landmarks, (480, 640, 3)) == pytest.approx(yaw, abs=1.0)
    eyes_mid = (landmarks[36, 0] + landmarks[45, 0]) / 2
    assert np.sign(landmarks[30, 0] - eyes_mid) == np.sign(yaw)  # positive = nose towards image right


def test_eye_aspect_ratio_follows_the_eyelids(real_observations: list[lv.Observation | lv.Missing]) -> None:
    base = next(o for o in real_observations if isinstance(o, lv.Observation)).landmarks.astype(np.float64)
    assert lv.eye_aspect_ratio(_close_eyes(base, 0.2)) == pytest.approx(0.2 * lv.eye_aspect_ratio(base), rel=0.05)


def _close_eyes(landmarks: np.ndarray, openness: float) -> np.ndarray:
    out = landmarks.copy()
    for eye in (range(36, 42), range(42, 48)):
        idx = list(eye)
        mid = (out[idx[0]] + out[idx[3]]) / 2
        for i in (idx[1], idx[2], idx[4], idx[5]):
            out[i, 1] = mid[1] + openness * (landmarks[i, 1] - mid[1])
    return out


def _sequence(
    base: lv.Observation, seconds: float, fps: float, yaw: object = None, eyes: object = None
) -> list[lv.Observation]:
    """Observations built from one real face, with yaw(t) and eye openness(t) imposed."""
    out = []
    for i in range(int(seconds * fps)):
        t = i / fps
        points = base.landmarks.astype(np.float64)
        if callable(eyes):
            points = _close_eyes(points, eyes(t))
        angle = yaw(t) if callable(yaw) else 0.0
        out.append(replace(base, t=t, landmarks=points.astype(np.float32), ear=lv.eye_aspect_ratio(points), yaw=angle))
    return out


@pytest.fixture(scope="module")
def base_face(real_observations: list[lv.Observation | lv.Missing]) -> lv.Observation:
    return next(o for o in real_observations if isinstance(o, lv.Observation) and o.ear > 0.25)


def test_blink_challenge(base_face: lv.Observation) -> None:
    step = lv.ChallengeStep(lv.Challenge.BLINK, 2.0, 5.0)
    blinking = _sequence(base_face, 6, 15, eyes=lambda t: 0.1 if 3.0 <= t < 3.2 else 1.0)
    assert lv.judge_step(step, blinking).passed
    early = _sequence(base_face, 6, 15, eyes=lambda t: 0.1 if 0.5 <= t < 0.7 else 1.0)
    assert not lv.judge_step(step, early).passed  # a blink outside the window does not count
    squint = _sequence(base_face, 6, 15, eyes=lambda t: 0.8 if 3.0 <= t < 3.2 else 1.0)
    assert not lv.judge_step(step, squint).passed


@pytest.mark.parametrize("kind", [lv.Challenge.TURN_LEFT, lv.Challenge.TURN_RIGHT])
def test_turn_challenges(base_face: lv.Observation, kind: lv.Challenge) -> None:
    step = lv.ChallengeStep(kind, 1.0, 4.0)
    direction = 1.0 if kind is lv.Challenge.TURN_LEFT else -1.0
    turning = _sequence(base_face, 5, 15, yaw=lambda t: direction * (30.0 if 2.0 <= t < 2.6 else 2.0))
    assert lv.judge_step(step, turning).passed
    assert not lv.judge_step(step, turning, mirrored=True).passed  # a mirrored source swaps the sides
    wrong_way = _sequence(base_face, 5, 15, yaw=lambda t: -direction * (30.0 if 2.0 <= t < 2.6 else 2.0))
    assert not lv.judge_step(step, wrong_way).passed
    small = _sequence(base_face, 5, 15, yaw=lambda t: direction * (12.0 if 2.0 <= t < 2.6 else 0.0))
    assert not lv.judge_step(step, small).passed


def test_challenges_are_random_distinct_and_timed() -> None:
    orders = set()
    for _ in range(60):
        plan = lv.draw_challenges(count=2)
        assert len({s.kind for s in plan}) == 2
        assert all(s.end > s.start for s in plan)
        assert plan[1].start >= plan[0].end
        orders.add(tuple(s.kind for s in plan))
    assert len(orders) >= 4  # all six ordered pairs are possible; 60 draws see most of them
    assert len(lv.draw_challenges(count=3, rng=secrets.SystemRandom())) == 3
    with pytest.raises(ValueError, match="between 2"):
        lv.draw_challenges(count=1)


def test_session_on_the_real_recording(real_observations: list[lv.Observation | lv.Missing]) -> None:
    """The recording blinks (so a blink window around it passes) but never turns (so a turn fails)."""
    seen = [o for o in real_observations if isinstance(o, lv.Observation)]
    blink_at = lv.blink_times(seen)[0]
    blink = lv.ChallengeStep(lv.Challenge.BLINK, blink_at - 0.5, blink_at + 1.0)
    verdict, steps = lv.judge_session([blink], real_observations)
    assert verdict.live
    assert steps[0].passed
    turn = lv.ChallengeStep(lv.Challenge.TURN_RIGHT, 3.5, 5.9)
    verdict, steps = lv.judge_session([blink, turn], real_observations)
    assert not verdict.live
    assert "turn_right" in verdict.reason
