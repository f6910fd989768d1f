"""Motion measures for passive liveness: does the face move like a face, or like a picture?

Two independent measures, because each alone can be fooled:

* **Landmark deformation** - landmarks mapped onto the clip's median face by an affine transform
  fitted on the rigid points (eye corners, nose); what remains on mouth, eyelids and brows,
  smoothed over ~0.2 s to remove detector jitter, relative to the eye distance. A still photo
  moved about scores near zero; but the landmark detector has a face prior, and a photo tilted
  strongly back and forth makes it *re-interpret* the foreshortened face as a turning head, so
  the landmarks deform even though the picture does not.
* **Optical-flow non-planarity** - corners inside the face are tracked between frames ~0.12 s
  apart (pyramidal Lucas-Kanade, forward-backward checked) and a homography is fitted with RANSAC.
  Everything on a flat picture, however it is moved or tilted, follows one homography; a live
  face does not (lips and eyelids move, the nose moves against the cheeks when the head turns).
  The 90th percentile residual relative to the eye distance measures that, pixel by pixel,
  with no learned prior to be fooled.

Both work on a face patch (landmark box + 20 %, 160 px) so the scale does not depend on the camera.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import numpy.typing as npt

Points = npt.NDArray[np.float64]
PATCH = 160
RIGHT_EYE, LEFT_EYE = list(range(36, 42)), list(range(42, 48))  # image-left eye, image-right eye
RIGID = [27, 28, 29, 30, 31, 33, 35, 36, 39, 42, 45]
NON_RIGID = [*range(17, 27), 37, 38, 40, 41, 43, 44, 46, 47, *range(48, 68)]


def eye_distance(points: npt.ArrayLike) -> float:
    pts = np.asarray(points, dtype=np.float64)
    return float(np.linalg.norm(pts[RIGHT_EYE].mean(0) - pts[LEFT_EYE].mean(0)))


def fit_rigid(points: Points, target: Points) -> Points:
    """Map ``points`` onto ``target`` by the least-squares affine transform of their rigid landmarks.

    Affine, not projective: a full homography fitted on points clustered around the eyes and nose
    extrapolates their jitter onto the mouth (measured: it doubles the score of a still photo).
    """
    source = np.hstack([points[RIGID], np.ones((len(RIGID), 1))])
    solution, *_ = np.linalg.lstsq(source, target[RIGID], rcond=None)
    return np.asarray(np.hstack([points, np.ones((len(points), 1))]) @ solution, dtype=np.float64)


def landmark_motion(
    shapes: Sequence[npt.ArrayLike], times: Sequence[float], smoothing_s: float = 0.2, quantile: float = 0.9
) -> float:
    """The landmark deformation score (module docstring); 0 for fewer than three shapes."""
    if len(shapes) < 3:
        return 0.0
    stack = np.stack([np.asarray(s, dtype=np.float64) for s in shapes])
    reference = stack[len(stack) // 2]
    aligned = stack
    for _ in range(2):  # align to a reference, then re-estimate it as the median aligned shape
        aligned = np.stack([fit_rigid(s, reference) for s in stack])
        reference = np.median(aligned, axis=0)
    moving = aligned[:, NON_RIGID, :] / max(eye_distance(reference), 1e-6)
    step = float(np.median(np.diff(np.asarray(times, dtype=np.float64))))
    window = max(1, min(len(moving), round(smoothing_s / max(step, 1e-3))))
    if window > 1:
        kernel = np.ones(window) / window
        moving = np.apply_along_axis(lambda x: np.convolve(x, kernel, mode="valid"), 0, moving)
    deviation = np.linalg.norm(moving - np.median(moving, axis=0), axis=2).mean(axis=1)
    return float(np.quantile(deviation, quantile))


def face_patch(image: npt.NDArray[np.uint8], landmarks: npt.ArrayLike) -> tuple[npt.NDArray[np.uint8], Points]:
    """A ``PATCH``-pixel grey square around the landmarks, and the landmarks in its coordinates."""
    pts = np.asarray(landmarks, dtype=np.float64)
    (x0, y0), (x1, y1) = pts.min(axis=0), pts.max(axis=0)
    side = max(x1 - x0, y1 - y0, 1.0) * 1.2
    scale = PATCH / side
    matrix = np.array([[scale, 0, PATCH / 2 - (x0 + x1) / 2 * scale], [0, scale, PATCH / 2 - (y0 + y1) / 2 * scale]])
    grey = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    patch = np.asarray(cv2.warpAffine(grey, matrix, (PATCH, PATCH), flags=interp), dtype=np.uint8)
    return patch, pts @ matrix[:, :2].T + matrix[:, 2]


def flow_residual(a: npt.NDArray[np.uint8], a_points: Points, b: npt.NDArray[np.uint8]) -> float | None:
    """90th-percentile homography residual of face corners tracked from patch ``a`` to ``b``, over the eye distance."""
    mask = np.zeros(a.shape, np.uint8)
    cv2.fillConvexPoly(mask, cv2.convexHull(np.round(a_points).astype(np.int32)), 255)
    corners = cv2.goodFeaturesToTrack(a, maxCorners=200, qualityLevel=0.01, minDistance=4, mask=mask)
    if corners is None or len(corners) < 12:
        return None
    moved, ok_fwd, _ = cv2.calcOpticalFlowPyrLK(a, b, corners, None, winSize=(15, 15), maxLevel=2)  # type: ignore[call-overload]
    back, ok_back, _ = cv2.calcOpticalFlowPyrLK(b, a, moved, None, winSize=(15, 15), maxLevel=2)  # type: ignore[call-overload]
    good = (ok_fwd[:, 0] == 1) & (ok_back[:, 0] == 1) & (np.linalg.norm(back - corners, axis=2)[:, 0] < 0.5)
    if good.sum() < 12:
        return None
    src, dst = corners[good, 0], moved[good, 0]
    homography, _ = cv2.findHomography(src, dst, cv2.RANSAC, 1.0)
    if homography is None:
        return None
    residual = np.linalg.norm(cv2.perspectiveTransform(src[None], homography)[0] - dst, axis=1)
    return float(np.quantile(residual, 0.9) / max(eye_distance(a_points), 1e-6))


def flow_nonplanarity(
    patches: Sequence[npt.NDArray[np.uint8]],
    patch_points: Sequence[Points],
    times: Sequence[float],
    gap_s: float = 0.12,
    quantile: float = 0.75,
) -> float:
    """The optical-flow score (module docstring) over pairs of frames at least ``gap_s`` apart."""
    scores = []
    j = 0
    for i in range(len(patches)):
        j = max(j, i + 1)
        while j < len(patches) and times[j] - times[i] < gap_s:
            j += 1
        if j >= len(patches):
            break
        value = flow_residual(patches[i], patch_points[i], patches[j])
        if value is not None:
            scores.append(value)
    return float(np.quantile(scores, quantile)) if scores else 0.0
