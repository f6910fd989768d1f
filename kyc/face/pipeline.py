"""Image or frame in, face templates out: the CPU-heavy work, as plain picklable functions.

``await run_cpu(embed_image, data)`` ships the work to the app's process pool; every argument
and result here is plain data (bytes, numpy arrays, frozen dataclasses) so it crosses the
process boundary, and every model is loaded lazily once per worker process.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from kyc.face.detect import DEFAULT_DETECTION, DetectionConfig, Face, analyse
from kyc.face.engines import ARCFACE, DLIB_CHIP, Engine, dlib_chip, get_engine
from kyc.face.errors import TemplateMismatch
from kyc.face.imageio import DEFAULT_LIMITS, ImageLimits, RGBImage, from_array, load_image

DEFAULT_ENGINES: tuple[str, ...] = ("mobilefacenet", "sface")


@dataclass(frozen=True)
class Template:
    """One face embedding with the model it came from (never compare across models)."""

    engine: str
    version: str
    vector: npt.NDArray[np.float32]

    def distance(self, other: Template) -> float:
        if (self.engine, self.version) != (other.engine, other.version):
            raise TemplateMismatch(
                f"cannot compare a {self.engine}/{self.version} template with {other.engine}/{other.version}"
            )
        return float(1.0 - np.dot(self.vector, other.vector))


@dataclass(frozen=True)
class FaceTemplates:
    """A face and its templates, keyed by engine name."""

    face: Face
    templates: dict[str, Template] = field(default_factory=dict)

    def missing(self, engines: Sequence[str]) -> list[str]:
        return [e for e in engines if e not in self.templates]


def crops_for(image: RGBImage, face: Face, engines: Sequence[Engine]) -> dict[str, npt.NDArray[np.uint8]]:
    """The aligned crop each requested alignment needs, computed once per alignment."""
    crops: dict[str, npt.NDArray[np.uint8]] = {}
    for engine in engines:
        if engine.alignment in crops:
            continue
        if engine.alignment == ARCFACE:
            crops[ARCFACE] = face.aligned
        elif engine.alignment == DLIB_CHIP:
            crops[DLIB_CHIP] = dlib_chip(image, face.landmarks)
        else:
            raise ValueError(f"unknown alignment {engine.alignment!r}")
    return crops


def embed_face(
    image: RGBImage, face: Face, engine_names: Sequence[str] = DEFAULT_ENGINES, models_dir: str | None = None
) -> FaceTemplates:
    """Templates of an already analysed face for each named engine."""
    engines = [get_engine(name, models_dir) for name in engine_names]
    crops = crops_for(image, face, engines)
    templates = {e.name: Template(e.name, e.version, e.embed(crops[e.alignment][None])[0]) for e in engines}
    return FaceTemplates(face=face, templates=templates)


def embed_frame(
    frame: npt.ArrayLike,
    engine_names: Sequence[str] = DEFAULT_ENGINES,
    *,
    detection: DetectionConfig = DEFAULT_DETECTION,
    models_dir: str | None = None,
) -> FaceTemplates:
    """Quality-gated templates of the single face in an RGB frame (raises a FaceError otherwise)."""
    image = from_array(frame)
    return embed_face(image, analyse(image, detection), engine_names, models_dir)


def embed_image(
    source: bytes | str | Path,
    engine_names: Sequence[str] = DEFAULT_ENGINES,
    *,
    limits: ImageLimits = DEFAULT_LIMITS,
    detection: DetectionConfig = DEFAULT_DETECTION,
    models_dir: str | None = None,
) -> FaceTemplates:
    """Decode an uploaded JPEG/PNG (limits, EXIF, bombs) and template its single face."""
    image = load_image(source, limits)
    return embed_face(image, analyse(image, detection), engine_names, models_dir)
