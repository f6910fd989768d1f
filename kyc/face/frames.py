"""Frame sources: a video file, a list of images, or any iterator of RGB frames with timestamps.

Everything downstream (liveness, multi-frame verification) consumes ``(seconds, rgb_array)``
pairs, so a WebRTC track only has to yield decoded frames with their presentation time.
``max_fps`` thins a source by timestamp (not by index) so analysis cost is bounded whatever the
camera's frame rate, and the motion measures see the same time scale at any rate.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from kyc.face.errors import CorruptImage, UnsupportedFormat
from kyc.face.imageio import DEFAULT_LIMITS, ImageLimits, RGBImage, from_array, load_image

TimedFrame = tuple[float, RGBImage]
MAX_VIDEO_SECONDS = 120.0


def video_frames(
    path: str | Path, max_fps: float | None = 15.0, max_seconds: float = MAX_VIDEO_SECONDS
) -> Iterator[TimedFrame]:
    """Decode a video file with OpenCV (FFmpeg backend) into RGB frames with timestamps in seconds.

    Frames closer than ``1/max_fps`` to the last kept one are grabbed but not converted.
    """
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise UnsupportedFormat(f"cannot open video {Path(path).name}")
    try:
        fps = capture.get(cv2.CAP_PROP_FPS)
        fps = fps if 1.0 <= fps <= 240.0 else 30.0  # raw streams (MJPEG) carry no rate
        step = 0.0 if not max_fps else 1.0 / max_fps
        index, last = 0, -np.inf
        while capture.grab():
            t = index / fps
            index += 1
            if t > max_seconds:
                break
            if t - last + 1e-6 < step:
                continue
            ok, frame = capture.retrieve()
            if not ok:
                break
            last = t
            yield t, np.asarray(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB), dtype=np.uint8)
    finally:
        capture.release()
    if index == 0:
        raise CorruptImage(f"no frame could be decoded from {Path(path).name}")


def image_frames(
    sources: Sequence[bytes | str | Path], fps: float = 10.0, limits: ImageLimits = DEFAULT_LIMITS
) -> Iterator[TimedFrame]:
    """Still images (JPEG/PNG, same checks as uploads) as a sequence spaced ``1/fps`` apart."""
    for i, source in enumerate(sources):
        yield i / fps, load_image(source, limits)


def array_frames(frames: Iterable[npt.ArrayLike], fps: float = 30.0) -> Iterator[TimedFrame]:
    """Decoded frames (greyscale/RGB/RGBA arrays) without timestamps, spaced ``1/fps`` apart."""
    for i, frame in enumerate(frames):
        yield i / fps, from_array(frame)


def thin(frames: Iterable[tuple[float, npt.ArrayLike]], max_fps: float | None) -> Iterator[TimedFrame]:
    """Keep frames at least ``1/max_fps`` apart by timestamp; timestamps must not go backwards."""
    step = 0.0 if not max_fps else 1.0 / max_fps
    last = -np.inf
    previous = -np.inf
    for stamp, frame in frames:
        t = float(stamp)
        if t < previous:
            raise ValueError("frame timestamps must not decrease")
        previous = t
        if t - last + 1e-6 >= step:
            last = t
            yield t, from_array(frame)
