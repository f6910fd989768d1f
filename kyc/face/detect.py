"""Face detection, 68-point landmarks and the quality gates, with face_recognition's dlib models.

Detection is the costly step (HOG on a 640x480 frame ~26 ms here, ~6 ms at 320x240), and KYC
faces are large, so detection runs on a reduced copy first and only climbs to finer scales when
nothing was found. Boxes are mapped back and the landmarks (and everything after them) use the
full-resolution image, so reducing for detection costs no identity detail.

"More than one face" is decided for faces that are at least ``secondary_ratio`` of the main
face's size: the detection scale is raised until such a face would be detectable, so a second
person next to the customer is never missed because of the reduction. A much smaller face (a
photo on an ID card held up, a poster far behind) does not count.

The dlib models are the ones face_recognition ships (``face_recognition_models``), loaded lazily
per process: a worker that never embeds with dlib does not hold its 22 MB ResNet.
"""

from __future__ import annotations

import functools
import math
import warnings
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from kyc.face.errors import FaceTooSmall, MultipleFaces, NoFace, TooBlurred, TooDark

RGBImage = npt.NDArray[np.uint8]
HOG_WINDOW = 80  # dlib's frontal detector finds faces down to about 80 px at its working scale


@dataclass(frozen=True)
class DetectionConfig:
    """Detection scales and quality gates. Thresholds are in full-resolution pixels / 0-255 grey levels."""

    first_pass_side: int = 320
    min_face_px: int = 64
    secondary_ratio: float = 0.5
    min_brightness: float = 40.0
    min_sharpness: float = 0.25
    max_upscale: float = 2.0


DEFAULT_DETECTION = DetectionConfig()


@dataclass(frozen=True)
class Box:
    """Face rectangle in full-resolution pixel coordinates."""

    left: int
    top: int
    right: int
    bottom: int

    @property
    def width(self) -> int:
        return self.right - self.left

    @property
    def height(self) -> int:
        return self.bottom - self.top

    @property
    def size(self) -> float:
        return math.sqrt(max(self.width, 0) * max(self.height, 0))

    def as_trbl(self) -> tuple[int, int, int, int]:
        """(top, right, bottom, left), face_recognition's order."""
        return (self.top, self.right, self.bottom, self.left)


@dataclass(frozen=True)
class Face:
    """One detected face with its landmarks and the measurements the gates used."""

    box: Box
    landmarks: npt.NDArray[np.float32]  # (68, 2) x, y at full resolution
    brightness: float
    sharpness: float
    others: int  # further faces seen (all sizes), for the record
    aligned: npt.NDArray[np.uint8]  # 112x112 RGB on the ArcFace template, reused by the embedders


@functools.cache
def _models() -> tuple[Any, Any]:
    import dlib  # type: ignore[import-untyped]

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # face_recognition_models imports the deprecated pkg_resources
        import face_recognition_models  # type: ignore[import-untyped]

    return dlib.get_frontal_face_detector(), dlib.shape_predictor(
        face_recognition_models.pose_predictor_model_location()
    )


def _grey(image: RGBImage) -> npt.NDArray[np.uint8]:
    return np.asarray(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), dtype=np.uint8)


def _detect_at(grey: npt.NDArray[np.uint8], scale: float) -> list[tuple[Box, float]]:
    """Run HOG on ``grey`` resized by ``scale``; boxes come back in full-resolution coordinates."""
    detector, _ = _models()
    if abs(scale - 1.0) < 1e-3:
        work = grey
    else:
        interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        work = np.asarray(cv2.resize(grey, None, fx=scale, fy=scale, interpolation=interp), dtype=np.uint8)
    rects, scores, _ = detector.run(work, 0, 0.0)
    h, w = grey.shape[:2]
    found = []
    for rect, score in zip(rects, scores, strict=True):
        box = Box(
            left=max(0, round(rect.left() / scale)),
            top=max(0, round(rect.top() / scale)),
            right=min(w, round((rect.right() + 1) / scale)),
            bottom=min(h, round((rect.bottom() + 1) / scale)),
        )
        if box.width > 0 and box.height > 0:
            found.append((box, float(score)))
    return found


def detect_boxes(image: RGBImage, config: DetectionConfig = DEFAULT_DETECTION) -> list[Box]:
    """All faces, largest first, at the coarsest scale that finds them (see the module docstring)."""
    grey = _grey(image)
    longest = max(grey.shape[:2])
    scale = min(1.0, config.first_pass_side / longest)
    finest = min(config.max_upscale, HOG_WINDOW / max(config.min_face_px * 0.8, 1.0))
    boxes: list[Box] = []
    while True:
        boxes = [b for b, _ in _detect_at(grey, scale)]
        if boxes or scale >= finest:
            break
        scale = min(finest, scale * 2.0)
    if not boxes:
        return []
    boxes.sort(key=lambda b: b.size, reverse=True)
    # Could a face of secondary_ratio x the main face's size have been missed at this scale?
    needed = HOG_WINDOW / max(boxes[0].size * config.secondary_ratio, 1.0)
    if needed > scale * 1.05 and scale < finest:
        boxes = sorted((b for b, _ in _detect_at(grey, min(finest, needed))), key=lambda b: b.size, reverse=True)
    return boxes


def landmarks68(image: RGBImage, box: Box) -> npt.NDArray[np.float32]:
    """The 68 dlib landmarks (x, y) inside ``box`` on the full-resolution image."""
    import dlib

    _, predictor = _models()
    shape = predictor(image, dlib.rectangle(box.left, box.top, box.right - 1, box.bottom - 1))
    return np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float32)


def face_brightness(image: RGBImage, landmarks: npt.NDArray[np.float32]) -> float:
    """Median grey level inside the landmark hull (the skin, not the background)."""
    hull = cv2.convexHull(landmarks.astype(np.int32))
    x, y, w, h = cv2.boundingRect(hull)
    x0, y0 = max(x, 0), max(y, 0)
    crop = image[y0 : y + h, x0 : x + w]
    if crop.size == 0:
        return 0.0
    mask = np.zeros(crop.shape[:2], np.uint8)
    cv2.fillConvexPoly(mask, hull - [x0, y0], 1)
    values = _grey(np.ascontiguousarray(crop))[mask.astype(bool)]
    return float(np.median(values)) if values.size else 0.0


def face_sharpness(aligned: RGBImage, landmarks: npt.NDArray[np.float32], image_shape: tuple[int, ...]) -> float:
    """Focus measure on the 112x112 aligned face: fine detail relative to coarse detail.

    ``std(g - G1*g) / std(G1*g - G3*g)`` over the face (landmark hull, minus any border the warp
    filled): a band ratio, so it does not depend on brightness, contrast or skin tone, and the
    aligned crop fixes the scale whatever the face size in the photo. Sharp photos measure
    0.4-0.7, the softest fixture photo 0.29, and Gaussian blur of 3 px at the crop scale brings
    every test face under 0.23; the ratio never goes much below ~0.2.
    """
    from kyc.face.align import ARCFACE_TEMPLATE, five_points, similarity_transform, transform_points

    size = aligned.shape[0]
    matrix = similarity_transform(five_points(landmarks), ARCFACE_TEMPLATE * (size / 112))
    mask = np.zeros((size, size), np.uint8)
    cv2.fillConvexPoly(mask, cv2.convexHull(np.round(transform_points(matrix, landmarks)).astype(np.int32)), 1)
    h, w = image_shape[:2]
    valid = np.zeros_like(mask)
    corners = transform_points(matrix, [[0, 0], [w, 0], [w, h], [0, h]])
    cv2.fillConvexPoly(valid, np.round(corners).astype(np.int32), 1)
    region = cv2.erode(mask & valid, np.ones((5, 5), np.uint8)).astype(bool)
    if region.sum() < 100:
        return 0.0
    grey = _grey(aligned).astype(np.float32)
    fine_blur = cv2.GaussianBlur(grey, (0, 0), 1.0)
    coarse_blur = cv2.GaussianBlur(grey, (0, 0), 3.0)
    fine = (grey - fine_blur)[region]
    coarse = (fine_blur - coarse_blur)[region]
    return float(fine.std() / (coarse.std() + 1e-3))


def analyse(image: RGBImage, config: DetectionConfig = DEFAULT_DETECTION) -> Face:
    """Exactly one usable face, or the specific :class:`FaceError` saying why not."""
    from kyc.face.align import align_face

    boxes = detect_boxes(image, config)
    if not boxes:
        raise NoFace("no face was found in the image")
    main = boxes[0]
    rivals = [b for b in boxes[1:] if b.size >= config.secondary_ratio * main.size]
    if rivals:
        raise MultipleFaces(
            f"{1 + len(rivals)} faces were found; only the customer may be in the picture", faces=1 + len(rivals)
        )
    if main.size < config.min_face_px:
        raise FaceTooSmall(
            f"the face is {main.size:.0f} px, at least {config.min_face_px} px is needed", face_px=round(main.size)
        )
    points = landmarks68(image, main)
    brightness = face_brightness(image, points)
    if brightness < config.min_brightness:
        raise TooDark(f"the face is too dark (level {brightness:.0f} of 255)", brightness=round(brightness, 1))
    aligned = align_face(image, points)
    sharpness = face_sharpness(aligned, points, image.shape)
    if sharpness < config.min_sharpness:
        raise TooBlurred(f"the face is too blurred (focus {sharpness:.3f})", sharpness=round(sharpness, 3))
    return Face(
        box=main, landmarks=points, brightness=brightness, sharpness=sharpness, others=len(boxes) - 1, aligned=aligned
    )
