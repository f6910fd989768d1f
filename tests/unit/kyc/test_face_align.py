"""Alignment geometry: the similarity fit, the five points, and the warp onto the ArcFace template."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kyc.face.align import (
    ARCFACE_TEMPLATE,
    align_face,
    alignment_error,
    five_points,
    similarity_transform,
    transform_points,
)


def _similarity(angle: float, scale: float, tx: float, ty: float) -> np.ndarray:
    c, s = math.cos(angle) * scale, math.sin(angle) * scale
    return np.array([[c, -s, tx], [s, c, ty]])


@settings(max_examples=200, deadline=None)
@given(
    angle=st.floats(-math.pi, math.pi),
    scale=st.floats(0.05, 20.0),
    tx=st.floats(-2000, 2000),
    ty=st.floats(-2000, 2000),
)
def test_fit_recovers_any_similarity(angle: float, scale: float, tx: float, ty: float) -> None:
    truth = _similarity(angle, scale, tx, ty)
    dst = transform_points(truth, ARCFACE_TEMPLATE)
    fitted = similarity_transform(ARCFACE_TEMPLATE, dst)
    np.testing.assert_allclose(transform_points(fitted, ARCFACE_TEMPLATE), dst, atol=1e-6 * max(1.0, scale) * 100)


def test_fit_never_reflects() -> None:
    mirrored = ARCFACE_TEMPLATE * [-1, 1]
    matrix = similarity_transform(ARCFACE_TEMPLATE, mirrored)
    assert np.linalg.det(matrix[:, :2]) > 0


def test_degenerate_points_are_refused() -> None:
    with pytest.raises(ValueError, match="degenerate"):
        similarity_transform(np.ones((5, 2)), ARCFACE_TEMPLATE)


def _landmarks_from_five(points: np.ndarray) -> np.ndarray:
    """68 landmarks whose eye centres, nose tip and mouth corners are the given five points."""
    lm = np.zeros((68, 2))
    lm[36:42] = points[0] + np.array([[-6, 0], [-3, -2], [3, -2], [6, 0], [3, 2], [-3, 2]])
    lm[42:48] = points[1] + np.array([[-6, 0], [-3, -2], [3, -2], [6, 0], [3, 2], [-3, 2]])
    lm[30], lm[48], lm[54] = points[2], points[3], points[4]
    return lm


def test_five_points_come_from_the_right_landmarks() -> None:
    np.testing.assert_allclose(five_points(_landmarks_from_five(ARCFACE_TEMPLATE)), ARCFACE_TEMPLATE)
    with pytest.raises(ValueError, match="68x2"):
        five_points(np.zeros((5, 2)))


@pytest.mark.parametrize(("angle", "scale"), [(0.0, 1.0), (0.4, 3.0), (-0.3, 6.5), (1.2, 0.8)])
def test_warp_puts_the_five_points_on_the_template(angle: float, scale: float) -> None:
    """Dots drawn at the face's five points land on the template after alignment (large faces too)."""
    truth = _similarity(angle, scale, 0, 0)
    pts = transform_points(truth, ARCFACE_TEMPLATE)
    pts += 40 - pts.min(axis=0)
    size = int(pts.max() + 40)
    canvas = np.zeros((size, size, 3), np.uint8)
    radius = max(2, round(1.5 * scale))
    for x, y in pts:
        cv2.circle(canvas, (round(x), round(y)), radius, (255, 255, 255), -1)
    aligned = align_face(canvas, _landmarks_from_five(pts)).astype(np.float64)[:, :, 0]
    assert aligned.shape == (112, 112)
    for i, (x, y) in enumerate(ARCFACE_TEMPLATE):  # brightness-weighted centroid near each template point
        x0, y0 = round(x) - 9, round(y) - 9
        window = aligned[y0 : y0 + 19, x0 : x0 + 19]
        assert window.sum() > 0, f"point {i} vanished"
        ys, xs = np.mgrid[y0 : y0 + 19, x0 : x0 + 19]
        cx, cy = (xs * window).sum() / window.sum(), (ys * window).sum() / window.sum()
        assert abs(cx - x) < 1.0
        assert abs(cy - y) < 1.0


def test_alignment_error_is_zero_for_a_perfect_face() -> None:
    pts = transform_points(_similarity(0.2, 2.0, 30, 40), ARCFACE_TEMPLATE)
    assert alignment_error(_landmarks_from_five(pts)) < 1e-6
