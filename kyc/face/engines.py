"""Face-embedding engines behind one interface.

An engine turns aligned face crops into L2-normalised vectors; two vectors from the same engine
*and model version* are compared by cosine distance ``1 - a.b`` (0 = identical, ~1 = unrelated).
Every template is stored with the engine's ``name`` and ``version`` so a template is never
compared with one from another model.

* ``mobilefacenet`` - 192-d, ArcFace 112x112 alignment, RGB scaled (x - 127.5) / 128.
* ``sface`` - 128-d, ArcFace 112x112 alignment, RGB as raw 0-255 floats (the model normalises
  inside), batch fixed at 1 by the model. RGB, not the BGR some wrappers feed: BGR was measured
  to double the false rejects.
* ``dlib`` - face_recognition's 128-d ResNet on dlib's own 150x150 chip. Its native metric is the
  Euclidean distance (face_recognition's 0.6 tolerance); here it is L2-normalised and compared by
  cosine distance like the others, which ranks pairs the same way (for unit vectors
  ``euclid^2 = 2 * cosine``) and keeps one metric for fusion and 1:N search.

Sessions are created lazily once per process and run single-threaded by default: the app runs
face work in a process pool, one process per core, so intra-op threads would only contend.
"""

from __future__ import annotations

import functools
import os
import warnings
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from kyc import models

Vectors = npt.NDArray[np.float32]
Chips = npt.NDArray[np.uint8]

ARCFACE = "arcface112"
DLIB_CHIP = "dlib150"
THREADS_ENV = "BRANCHLESS_FACE_THREADS"


class Engine(Protocol):
    """What the verifier needs from an embedding model."""

    name: str
    version: str
    dim: int
    alignment: str  # which crop embed() expects: ARCFACE (112x112) or DLIB_CHIP (150x150)

    def embed(self, chips: Chips) -> Vectors:
        """``(n, H, W, 3)`` uint8 RGB crops -> ``(n, dim)`` float32 unit vectors."""
        ...

    def distance(self, a: npt.ArrayLike, b: npt.ArrayLike) -> float:
        """Cosine distance between two of this engine's vectors."""
        ...


def l2_normalise(vectors: npt.ArrayLike) -> Vectors:
    arr = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(arr, axis=-1, keepdims=True)
    return np.asarray(arr / np.maximum(norms, 1e-12), dtype=np.float32)


def cosine_distance(a: npt.ArrayLike, b: npt.ArrayLike) -> float:
    """Cosine distance of two unit vectors."""
    return float(1.0 - np.dot(np.asarray(a, np.float32), np.asarray(b, np.float32)))


def _threads() -> int:
    return max(1, int(os.environ.get(THREADS_ENV, "1")))


def _session(model_bytes: bytes) -> Any:
    import onnxruntime as ort  # type: ignore[import-untyped]

    options = ort.SessionOptions()
    options.intra_op_num_threads = _threads()
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])


def _check_chips(chips: Chips, size: int) -> Chips:
    arr = np.asarray(chips)
    if arr.ndim == 3:
        arr = arr[None]
    if arr.ndim != 4 or arr.shape[1:] != (size, size, 3):
        raise ValueError(f"expected (n, {size}, {size}, 3) crops, got {arr.shape}")
    return arr


@dataclass
class OnnxEngine(ABC):
    """An ArcFace-aligned ONNX model; subclasses say how pixels are scaled and the batch limit."""

    name: str
    version: str
    dim: int
    session: Any
    alignment: str = ARCFACE
    max_batch: int | None = None

    @abstractmethod
    def _prepare(self, chips: Chips) -> npt.NDArray[np.float32]:
        """Scale and lay out the aligned RGB crops as this model was trained on them."""

    def distance(self, a: npt.ArrayLike, b: npt.ArrayLike) -> float:
        return cosine_distance(a, b)

    def embed(self, chips: Chips) -> Vectors:
        arr = _check_chips(chips, 112)
        if len(arr) == 0:
            return np.zeros((0, self.dim), np.float32)
        tensor = self._prepare(arr)
        input_name = self.session.get_inputs()[0].name
        step = self.max_batch or len(tensor)
        outputs = [self.session.run(None, {input_name: tensor[i : i + step]})[0] for i in range(0, len(tensor), step)]
        out = np.concatenate(outputs, axis=0)
        if out.shape != (len(arr), self.dim) or not np.all(np.isfinite(out)):
            raise RuntimeError(f"{self.name} produced {out.shape} non-finite or misshapen output")
        return l2_normalise(out)


class MobileFaceNetEngine(OnnxEngine):
    def _prepare(self, chips: Chips) -> npt.NDArray[np.float32]:
        x = (chips.astype(np.float32) - 127.5) / 128.0
        return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


class SFaceEngine(OnnxEngine):
    def _prepare(self, chips: Chips) -> npt.NDArray[np.float32]:
        return np.ascontiguousarray(chips.astype(np.float32).transpose(0, 3, 1, 2))


@dataclass
class DlibEngine:
    """face_recognition's ResNet on dlib 150x150 chips (see the module docstring about its metric)."""

    encoder: Any
    version: str
    name: str = "dlib"
    dim: int = 128
    alignment: str = DLIB_CHIP

    def embed(self, chips: Chips) -> Vectors:
        arr = _check_chips(chips, 150)
        if len(arr) == 0:
            return np.zeros((0, self.dim), np.float32)
        descriptors = self.encoder.compute_face_descriptor([np.ascontiguousarray(c) for c in arr], 0)
        return l2_normalise(np.array([np.array(d) for d in descriptors], dtype=np.float32))

    def distance(self, a: npt.ArrayLike, b: npt.ArrayLike) -> float:
        return cosine_distance(a, b)


def _dlib_version() -> str:
    from importlib.metadata import version

    return f"dlib_face_recognition_resnet_model_v1/face_recognition_models-{version('face_recognition_models')}"


ENGINE_NAMES = ("mobilefacenet", "sface", "dlib")


@functools.cache
def get_engine(name: str, models_dir: str | None = None) -> Engine:
    """The engine ``name``, loaded once per process; model files are hash-checked on load."""
    if name == "mobilefacenet":
        info, data = models.load_bytes("mobilefacenet", models_dir)
        return MobileFaceNetEngine(name="mobilefacenet", version=info.version, dim=192, session=_session(data))
    if name == "sface":
        info, data = models.load_bytes("sface", models_dir)
        return SFaceEngine(name="sface", version=info.version, dim=128, session=_session(data), max_batch=1)
    if name == "dlib":
        import dlib  # type: ignore[import-untyped]

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import face_recognition_models  # type: ignore[import-untyped]

        encoder = dlib.face_recognition_model_v1(face_recognition_models.face_recognition_model_location())
        return DlibEngine(encoder=encoder, version=_dlib_version())
    raise ValueError(f"unknown face engine {name!r}; known: {', '.join(ENGINE_NAMES)}")


def dlib_chip(image: npt.NDArray[np.uint8], landmarks68: npt.ArrayLike, size: int = 150) -> Chips:
    """dlib's own aligned chip (as face_recognition's encoder expects), from the 68 landmarks."""
    import dlib

    pts = np.asarray(landmarks68, dtype=np.float64)
    x0, y0 = pts.min(axis=0)
    x1, y1 = pts.max(axis=0)
    rect = dlib.rectangle(int(x0), int(y0), int(x1), int(y1))
    shape = dlib.full_object_detection(rect, [dlib.point(round(x), round(y)) for x, y in pts])
    chip: Chips = dlib.get_face_chip(image, shape, size=size, padding=0.25)
    return chip
