"""Real fixture faces and frames for the KYC flow."""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
import pytest

FIXTURES = Path(__file__).resolve().parents[3].parent / "shared" / "fixtures"


def image_bytes(name: str) -> bytes:
    return (FIXTURES / "images" / name).read_bytes()


def video_jpegs(name: str, fps: float = 5.0, seconds: float = 4.0) -> list[tuple[bytes, int]]:
    """Frames of a fixture video sampled at ``fps``, as JPEG bytes with their time in ms."""
    from kyc.face.frames import thin, video_frames

    out: list[tuple[bytes, int]] = []
    for t, frame in thin(video_frames(str(FIXTURES / "video" / name)), fps):
        if t > seconds:
            break
        ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(np.asarray(frame), cv2.COLOR_RGB2BGR))
        assert ok
        out.append((jpeg.tobytes(), int(t * 1000)))
    return out


def blank_png() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (320, 240), (200, 200, 200)).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="session")
def real_frames() -> list[tuple[bytes, int]]:
    return video_jpegs("lp_d13_person_real_640x480_6s.mp4")


@pytest.fixture(scope="session")
def replay_frames() -> list[tuple[bytes, int]]:
    return video_jpegs("lp_d13_person_synthetic_still_replay_640x480_6s.mp4")


@pytest.fixture(autouse=True)
async def empty_gallery() -> None:
    """The 1:N search spans every enrolled face in the database, and these tests
    enrol the same fixture faces again and again: start each test with none, so
    only the duplicate-identity tests see duplicates."""
    from kyc import biometrics
    from kyc.tables import FaceTemplate

    await FaceTemplate.delete(force=True)
    biometrics.forget_customer(0)
