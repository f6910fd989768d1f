"""Turning untrusted uploaded bytes into an RGB array, or refusing them.

Identity portraits and selfies come from customers, so decoding is the attack surface: we accept
JPEG and PNG only, check the byte size and the pixel count from the header *before* decoding
(a tiny file can declare a gigapixel canvas), apply EXIF orientation (phones store portraits
rotated), flatten alpha onto white, and return 8-bit RGB whatever the source mode (greyscale
photos are common in older ID scans).
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageOps, UnidentifiedImageError

from kyc.face.errors import CorruptImage, DecompressionBomb, ImageError, ImageTooLarge, UnsupportedFormat

RGBImage = npt.NDArray[np.uint8]

ALLOWED_FORMATS = frozenset({"JPEG", "PNG"})


@dataclass(frozen=True)
class ImageLimits:
    """Upper bounds for an uploaded image; the defaults cover a 48 MP phone photo."""

    max_bytes: int = 20 * 1024 * 1024
    max_pixels: int = 50_000_000
    max_side: int = 12_000
    min_side: int = 32


DEFAULT_LIMITS = ImageLimits()


def load_image(source: bytes | str | Path, limits: ImageLimits = DEFAULT_LIMITS) -> RGBImage:
    """Decode ``source`` (bytes or a file path) into an ``(h, w, 3)`` uint8 RGB array.

    Raises a subclass of :class:`~kyc.face.errors.ImageError` naming what is wrong.
    """
    data = _read(source, limits)
    try:
        with warnings.catch_warnings():
            # PIL warns (and under -W error raises) past its own bomb limit; we check ourselves below.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=sorted(ALLOWED_FORMATS)) as img:
                width, height = img.size
                _check_dimensions(width, height, limits)
                img.load()
                oriented = ImageOps.exif_transpose(img)
                return _to_rgb(oriented if oriented is not None else img)
    except UnidentifiedImageError as exc:
        raise UnsupportedFormat("only JPEG and PNG images are accepted") from exc
    except Image.DecompressionBombError as exc:
        raise DecompressionBomb(str(exc)) from exc
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        # Truncated data, broken chunks, oversized PNG text chunks ...
        raise CorruptImage(f"the image could not be decoded: {exc}") from exc


def _read(source: bytes | str | Path, limits: ImageLimits) -> bytes:
    if isinstance(source, bytes):
        data = source
    else:
        path = Path(source)
        try:
            size = path.stat().st_size
        except OSError as exc:
            raise ImageError(f"cannot read {path.name}: {exc.strerror}") from exc
        if size > limits.max_bytes:
            raise ImageTooLarge(f"file is {size} bytes, the limit is {limits.max_bytes}", bytes=size)
        data = path.read_bytes()
    if len(data) > limits.max_bytes:
        raise ImageTooLarge(f"image is {len(data)} bytes, the limit is {limits.max_bytes}", bytes=len(data))
    if not data:
        raise CorruptImage("the image is empty")
    return data


def _check_dimensions(width: int, height: int, limits: ImageLimits) -> None:
    pixels = width * height
    if pixels > limits.max_pixels:
        raise DecompressionBomb(
            f"image declares {width}x{height} = {pixels} pixels, the limit is {limits.max_pixels}",
            width=width,
            height=height,
        )
    if max(width, height) > limits.max_side:
        raise ImageTooLarge(f"image side {max(width, height)} exceeds {limits.max_side}", width=width, height=height)
    if min(width, height) < limits.min_side:
        raise ImageError(f"image side {min(width, height)} is below {limits.min_side}", width=width, height=height)


def _to_rgb(img: Image.Image) -> RGBImage:
    """Any PIL mode to 8-bit RGB: 16-bit greys are rescaled, alpha is composited onto white."""
    if img.mode in {"I;16", "I;16B", "I;16L", "I"}:
        arr = np.asarray(img, dtype=np.float64)
        peak = 65535.0 if img.mode.startswith("I;16") else max(float(arr.max()), 1.0)
        grey = np.clip(arr / peak * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(grey[:, :, None], 3, axis=2))
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in {"RGBA", "LA", "PA"}:
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    rgb = img.convert("RGB") if img.mode != "RGB" else img
    return np.ascontiguousarray(np.asarray(rgb, dtype=np.uint8))


def from_array(frame: npt.ArrayLike) -> RGBImage:
    """Accept a decoded frame (greyscale, RGB or RGBA; any integer or float type in 0-255)."""
    arr = np.asarray(frame)
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise UnsupportedFormat(f"a frame must be HxW, HxWx3 or HxWx4, not {arr.shape}")
    arr = arr[:, :, :3]
    if arr.dtype != np.uint8:
        arr = np.clip(arr, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(arr)
