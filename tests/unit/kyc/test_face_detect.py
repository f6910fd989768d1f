"""Detection at reduced scale, full-resolution landmarks, and the quality gates with their errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from kyc.face import errors
from kyc.face.calibration import fixtures_dir
from kyc.face.detect import DEFAULT_DETECTION, Box, analyse, detect_boxes
from kyc.face.imageio import RGBImage, load_image

FIXTURES = fixtures_dir()
if not (FIXTURES / "manifest.json").is_file():
    raise RuntimeError(f"shared face fixtures not found at {FIXTURES}; set BRANCHLESS_FIXTURES")
MANIFEST: dict[str, Any] = json.loads((FIXTURES / "manifest.json").read_text())


def image(name: str) -> RGBImage:
    return load_image(FIXTURES / "images" / name)


@pytest.fixture(scope="module")
def obama() -> RGBImage:
    return image("obama_01.jpg")


def _iou(a: Box, trbl: list[int]) -> float:
    top, right, bottom, left = trbl
    ix = max(0, min(a.right, right) - max(a.left, left))
    iy = max(0, min(a.bottom, bottom) - max(a.top, top))
    inter = ix * iy
    return inter / (a.width * a.height + (right - left) * (bottom - top) - inter)


@pytest.mark.parametrize("name", ["obama_01.jpg", "biden_02.jpg", "chen_weiting_01.jpg", "john_salley_01.jpg"])
def test_boxes_found_at_reduced_scale_map_back_to_full_resolution(name: str) -> None:
    entry = next(f for f in MANIFEST["files"] if f["file"] == f"images/{name}")
    boxes = detect_boxes(image(name))
    assert len(boxes) >= 1
    assert _iou(boxes[0], entry["face_boxes_trbl"][0]) > 0.6


def test_landmarks_are_full_resolution_and_inside_the_face(obama: RGBImage) -> None:
    face = analyse(obama)
    xs, ys = face.landmarks[:, 0], face.landmarks[:, 1]
    assert face.landmarks.shape == (68, 2)
    margin = 0.25 * face.box.size
    assert xs.min() > face.box.left - margin
    assert xs.max() < face.box.right + margin
    assert ys.min() > face.box.top - margin
    assert ys.max() < face.box.bottom + margin
    assert face.aligned.shape == (112, 112, 3)


def test_no_face_is_refused() -> None:
    with pytest.raises(errors.NoFace) as info:
        analyse(image("none_cat.png"))
    assert info.value.code == "no_face"


def test_two_faces_are_refused() -> None:
    with pytest.raises(errors.MultipleFaces) as info:
        analyse(image("multi_voc_2faces.jpg"))
    assert info.value.code == "multiple_faces"
    assert info.value.details["faces"] == 2


def _with_second_face(base: RGBImage, ratio: float) -> RGBImage:
    """``base`` on a wider canvas with a copy of itself scaled by ``ratio`` beside it."""
    h, w = base.shape[:2]
    canvas = np.full((h, 2 * w, 3), 128, np.uint8)
    canvas[:, :w] = base
    small = cv2.resize(base, None, fx=ratio, fy=ratio, interpolation=cv2.INTER_AREA)
    canvas[: small.shape[0], w : w + small.shape[1]] = small
    return canvas


def test_a_second_person_of_similar_size_counts(obama: RGBImage) -> None:
    with pytest.raises(errors.MultipleFaces):
        analyse(_with_second_face(obama, 0.8))


def test_a_much_smaller_face_does_not_count(obama: RGBImage) -> None:
    # a face at 30% of the customer's (a photo on a card, a poster) is below the secondary ratio
    assert DEFAULT_DETECTION.secondary_ratio > 0.3
    face = analyse(_with_second_face(obama, 0.3))
    assert face.box.left < obama.shape[1]


def test_face_too_small(obama: RGBImage) -> None:
    scale = 50 / analyse(obama).box.size
    small = cv2.resize(obama, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    with pytest.raises(errors.FaceTooSmall) as info:
        analyse(small)
    assert info.value.details["face_px"] < DEFAULT_DETECTION.min_face_px


def test_too_dark(obama: RGBImage) -> None:
    with pytest.raises(errors.TooDark) as info:
        analyse((obama * 0.15).astype(np.uint8))
    assert info.value.code == "too_dark"


def test_dim_but_usable_is_accepted(obama: RGBImage) -> None:
    assert analyse((obama * 0.45).astype(np.uint8)).brightness >= DEFAULT_DETECTION.min_brightness


def test_too_blurred(obama: RGBImage) -> None:
    size = analyse(obama).box.size
    blurred = cv2.GaussianBlur(obama, (0, 0), 4 * size / 112)  # 4 px at the 112-px crop scale
    with pytest.raises(errors.TooBlurred) as info:
        analyse(blurred)
    assert info.value.code == "too_blurred"


def test_sharpness_does_not_depend_on_brightness_or_face_size(obama: RGBImage) -> None:
    base = analyse(obama).sharpness
    dim = analyse((obama * 0.5).astype(np.uint8)).sharpness
    half = analyse(cv2.resize(obama, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)).sharpness
    assert dim == pytest.approx(base, rel=0.15)
    assert half == pytest.approx(base, rel=0.3)


def test_every_single_face_fixture_passes_the_gates() -> None:
    """The gates must not refuse ordinary photos (greyscale 250x250 news photos included)."""
    refused = {}
    for entry in MANIFEST["files"]:
        if entry["kind"] != "image" or entry.get("faces_expected") != 1 or entry.get("faces_detected_hog") != 1:
            continue
        if Path(entry["file"]).name.startswith("artwork"):
            continue
        try:
            analyse(load_image(FIXTURES / entry["file"]))
        except errors.FaceError as exc:
            refused[entry["file"]] = exc.code
    assert refused == {}
