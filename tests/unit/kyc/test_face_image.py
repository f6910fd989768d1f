"""Decoding untrusted images: formats, limits, decompression bombs, EXIF orientation, colour modes."""

from __future__ import annotations

import io
import pickle
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from kyc.face import errors
from kyc.face.imageio import ImageLimits, from_array, load_image


def _encode(img: Image.Image, fmt: str, **kwargs: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def _png_declaring(width: int, height: int) -> bytes:
    """A PNG whose header declares ``width x height`` pixels but whose data is a few bytes."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    )


def test_jpeg_and_png_decode_to_rgb() -> None:
    img = Image.new("RGB", (64, 48), (10, 200, 30))
    for fmt in ("JPEG", "PNG"):
        arr = load_image(_encode(img, fmt))
        assert arr.shape == (48, 64, 3)
        assert arr.dtype == np.uint8


@pytest.mark.parametrize("fmt", ["GIF", "BMP", "WEBP", "TIFF"])
def test_other_formats_are_refused(fmt: str) -> None:
    with pytest.raises(errors.UnsupportedFormat) as info:
        load_image(_encode(Image.new("RGB", (64, 64)), fmt))
    assert info.value.code == "unsupported_format"


def test_not_an_image_is_refused() -> None:
    with pytest.raises(errors.UnsupportedFormat):
        load_image(b"%PDF-1.7 definitely not a picture")


@pytest.mark.parametrize("side", [9_000, 60_000])  # past our limit; past PIL's own hard limit too
def test_decompression_bomb_is_refused_before_decoding(side: int) -> None:
    with pytest.raises(errors.DecompressionBomb) as info:
        load_image(_png_declaring(side, side), ImageLimits(max_side=100_000))
    assert info.value.code == "decompression_bomb"


def test_pixel_and_byte_limits() -> None:
    data = _encode(Image.new("RGB", (400, 300)), "PNG")
    with pytest.raises(errors.DecompressionBomb):
        load_image(data, ImageLimits(max_pixels=100_000))
    with pytest.raises(errors.ImageTooLarge):
        load_image(data, ImageLimits(max_bytes=len(data) - 1))
    with pytest.raises(errors.ImageTooLarge):
        load_image(data, ImageLimits(max_side=399))
    with pytest.raises(errors.ImageError):
        load_image(_encode(Image.new("RGB", (20, 20)), "PNG"))


def test_truncated_image_is_corrupt() -> None:
    data = _encode(Image.new("RGB", (200, 200), (120, 50, 50)), "JPEG")
    with pytest.raises(errors.CorruptImage):
        load_image(data[: len(data) // 3])
    with pytest.raises(errors.CorruptImage):
        load_image(b"")


def test_exif_orientation_is_applied() -> None:
    img = Image.new("RGB", (80, 40), (0, 0, 0))
    img.paste((255, 255, 255), (0, 0, 40, 40))  # white left half
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated: display turned 90 degrees clockwise
    arr = load_image(_encode(img, "JPEG", exif=exif, quality=95))
    assert arr.shape == (80, 40, 3)
    assert arr[:40].mean() > 200  # the white half is on top after rotation
    assert arr[40:].mean() < 50


def test_greyscale_becomes_three_equal_channels() -> None:
    arr = load_image(_encode(Image.new("L", (50, 50), 77), "PNG"))
    assert arr.shape == (50, 50, 3)
    assert (arr == 77).all()


def test_sixteen_bit_greyscale_is_rescaled() -> None:
    img = Image.fromarray(np.full((40, 40), 65535, dtype=np.uint16))
    arr = load_image(_encode(img, "PNG"))
    assert arr.shape == (40, 40, 3)
    assert (arr == 255).all()


def test_transparency_is_flattened_onto_white() -> None:
    img = Image.new("RGBA", (40, 40), (0, 0, 0, 0))
    img.paste((200, 0, 0, 255), (0, 0, 20, 40))
    arr = load_image(_encode(img, "PNG"))
    assert tuple(arr[5, 5]) == (200, 0, 0)
    assert tuple(arr[5, 35]) == (255, 255, 255)


def test_frames_from_arrays() -> None:
    assert from_array(np.zeros((10, 12), np.uint8)).shape == (10, 12, 3)
    assert from_array(np.zeros((10, 12, 4), np.float32)).dtype == np.uint8
    with pytest.raises(errors.UnsupportedFormat):
        from_array(np.zeros((10, 12, 2), np.uint8))


def test_errors_keep_code_and_details_across_processes() -> None:
    err = errors.FaceTooSmall("face is 30 px", face_px=30)
    clone = pickle.loads(pickle.dumps(err))
    assert type(clone) is errors.FaceTooSmall
    assert clone.as_dict() == {"error": "face_too_small", "message": "face is 30 px", "details": {"face_px": 30}}
    assert issubclass(errors.DecompressionBomb, errors.ImageError)
    assert issubclass(errors.ImageError, errors.FaceError)
