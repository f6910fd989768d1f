"""Five-point alignment of a face to the 112x112 ArcFace template.

ArcFace-style models (MobileFaceNet, SFace) were trained on faces warped so that the eye
centres, nose tip and mouth corners land on fixed template points; feeding them any other
crop costs accuracy. The five points come from dlib's 68 landmarks, the warp is the
least-squares similarity transform (rotation, uniform scale, translation; no shear or
reflection, which would distort identity) computed with Umeyama's method.
"""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

ARCFACE_SIZE = 112
# insightface's reference points for 112x112 crops: image-left eye, image-right eye, nose tip,
# image-left mouth corner, image-right mouth corner.
ARCFACE_TEMPLATE: FloatArray = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float64,
)

# dlib 68-point indices: 36-41 is the eye on the image's left (the subject's right eye).
_LEFT_EYE = slice(36, 42)
_RIGHT_EYE = slice(42, 48)
_NOSE_TIP = 30
_MOUTH_LEFT = 48
_MOUTH_RIGHT = 54


def five_points(landmarks68: npt.ArrayLike) -> FloatArray:
    """Eye centres, nose tip and mouth corners (in template order) from 68 landmarks ``(68, 2)`` x,y."""
    pts = np.asarray(landmarks68, dtype=np.float64)
    if pts.shape != (68, 2):
        raise ValueError(f"expected 68x2 landmarks, got {pts.shape}")
    return np.stack(
        [
            pts[_LEFT_EYE].mean(axis=0),
            pts[_RIGHT_EYE].mean(axis=0),
            pts[_NOSE_TIP],
            pts[_MOUTH_LEFT],
            pts[_MOUTH_RIGHT],
        ]
    )


def similarity_transform(src: npt.ArrayLike, dst: npt.ArrayLike) -> FloatArray:
    """2x3 matrix of the similarity transform minimising squared error from ``src`` to ``dst`` (Umeyama 1991)."""
    s = np.asarray(src, dtype=np.float64)
    d = np.asarray(dst, dtype=np.float64)
    if s.shape != d.shape or s.ndim != 2 or s.shape[1] != 2 or len(s) < 2:
        raise ValueError("src and dst must be matching (n>=2, 2) point arrays")
    mu_s, mu_d = s.mean(axis=0), d.mean(axis=0)
    sc, dc = s - mu_s, d - mu_d
    var_s = float((sc**2).sum() / len(s))
    if var_s <= 1e-12:
        raise ValueError("source points are degenerate (all equal)")
    cov = dc.T @ sc / len(s)
    u, sigma, vt = np.linalg.svd(cov)
    sign = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:  # forbid reflections
        sign[-1] = -1.0
    rot = u @ np.diag(sign) @ vt
    scale = float((sigma * sign).sum() / var_s)
    matrix = np.empty((2, 3), dtype=np.float64)
    matrix[:, :2] = scale * rot
    matrix[:, 2] = mu_d - scale * rot @ mu_s
    return matrix


def transform_points(matrix: FloatArray, points: npt.ArrayLike) -> FloatArray:
    pts = np.asarray(points, dtype=np.float64)
    return pts @ matrix[:, :2].T + matrix[:, 2]


def align_face(
    image: npt.NDArray[np.uint8], landmarks68: npt.ArrayLike, size: int = ARCFACE_SIZE
) -> npt.NDArray[np.uint8]:
    """Warp the face to the ArcFace template; returns ``(size, size, 3)`` uint8 in the image's channel order.

    A large face (a close-up photo) shrunk straight to 112 px by bilinear sampling aliases; it is
    first reduced with Gaussian pyramid steps to at most twice the target scale, then warped.
    """
    dst = ARCFACE_TEMPLATE * (size / ARCFACE_SIZE)
    src = five_points(landmarks68)
    matrix = similarity_transform(src, dst)
    scale = float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))
    if scale < 0.5:
        image, src = _reduce_around(image, src, matrix, scale, size)
        matrix = similarity_transform(src, dst)
    warped = cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    return np.asarray(warped, dtype=np.uint8)


def _reduce_around(
    image: npt.NDArray[np.uint8], src: FloatArray, matrix: FloatArray, scale: float, size: int
) -> tuple[npt.NDArray[np.uint8], FloatArray]:
    """Crop the region the warp will sample (with a margin) and halve it with Gaussian pyramid steps
    until the remaining reduction is at most 2x (pyrDown is an anti-aliased halving, ~10x cheaper than
    an arbitrary-factor area resize)."""
    inverse = np.asarray(cv2.invertAffineTransform(matrix), dtype=np.float64)
    corners = transform_points(inverse, [[0, 0], [size, 0], [0, size], [size, size]])
    margin = 0.1 * (corners.max(axis=0) - corners.min(axis=0))
    h, w = image.shape[:2]
    x0, y0 = np.floor(np.maximum(corners.min(axis=0) - margin, 0)).astype(int)
    x1, y1 = np.ceil(np.minimum(corners.max(axis=0) + margin, [w, h])).astype(int)
    if x1 - x0 < 8 or y1 - y0 < 8:
        return image, src
    reduced = np.ascontiguousarray(image[y0:y1, x0:x1])
    moved = src - [x0, y0]
    while scale < 0.5 and min(reduced.shape[:2]) >= 16:
        reduced = np.asarray(cv2.pyrDown(reduced), dtype=np.uint8)
        moved = moved * 0.5  # pyrDown samples source pixel 2x at output pixel x
        scale *= 2.0
    return reduced, moved


def alignment_error(landmarks68: npt.ArrayLike, size: int = ARCFACE_SIZE) -> float:
    """RMS distance (in output pixels) between the warped five points and the template: a pose/fit check."""
    dst = ARCFACE_TEMPLATE * (size / ARCFACE_SIZE)
    src = five_points(landmarks68)
    matrix = similarity_transform(src, dst)
    return float(np.sqrt(((transform_points(matrix, src) - dst) ** 2).sum(axis=1).mean()))
