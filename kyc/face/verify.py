"""1:1 verification: fusing engines, the decision, and the best evidence over several frames.

Each engine's cosine distance is standardised on different-person pairs (``z = (d - mean) / std``,
constants from ``calibration.json``) so the engines' scales become comparable, then the weighted
mean of the z-scores is re-expressed on the engines' pooled cosine scale
(``mean_w + std_w * z``). With one engine this is exactly its cosine distance; with several it
reads the same way: 0 = the same photo, ~0.9 = a typical stranger. A pair matches when that
distance is at or below the threshold, which calibration set for this very set of engines and
weights at the strict operating point (no false match on any fixture pair, minus a margin).

Which engines decide, with what weights and at what threshold, is configuration: a bank whose
counsel rejects a model names the others, and the matching calibrated threshold is used.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from kyc.face.detect import DEFAULT_DETECTION, DetectionConfig, analyse
from kyc.face.errors import FaceError, NotEnoughFrames
from kyc.face.imageio import from_array
from kyc.face.pipeline import FaceTemplates, Template, embed_face

CALIBRATION_PATH = Path(__file__).with_name("calibration.json")


@dataclass(frozen=True)
class EngineStats:
    """Cosine distance of different-person pairs for one engine: what "a stranger" looks like."""

    mean: float
    std: float


@dataclass(frozen=True)
class Decision:
    match: bool
    distance: float
    threshold: float
    engines: dict[str, float] = field(default_factory=dict)  # each engine's own cosine distance
    frames_used: int = 1

    def as_public(self) -> dict[str, Any]:
        """The CLI/API contract: ``{"match", "distance", "threshold"}``."""
        return {"match": self.match, "distance": round(self.distance, 6), "threshold": round(self.threshold, 6)}


@dataclass(frozen=True)
class VerifierConfig:
    """Engines, weights, threshold (pooled cosine scale) and the multi-frame evidence rule."""

    engines: tuple[str, ...]
    weights: Mapping[str, float]
    threshold: float
    stats: Mapping[str, EngineStats]
    min_frames: int = 3
    frame_fraction: float = 0.3

    def __post_init__(self) -> None:
        if not self.engines:
            raise ValueError("at least one engine is needed")
        for name in self.engines:
            if name not in self.stats or self.weights.get(name, 0) <= 0:
                raise ValueError(f"engine {name!r} needs calibration stats and a positive weight")
        if self.min_frames < 1 or not 0 < self.frame_fraction <= 1:
            raise ValueError("min_frames must be >= 1 and frame_fraction in (0, 1]")

    @classmethod
    def calibrated(
        cls, engines: Sequence[str] | None = None, path: Path = CALIBRATION_PATH, **overrides: Any
    ) -> VerifierConfig:
        """The configuration calibration chose for ``engines`` (default: its recommended set)."""
        data = load_calibration(path)
        names = tuple(engines) if engines else tuple(data["default"])
        key = "+".join(sorted(names))
        combos = data["combinations"]
        if key not in combos:
            raise ValueError(f"no calibrated threshold for engines {key}; run python -m kyc.face.calibration")
        combo = combos[key]
        stats = {n: EngineStats(**data["engines"][n]["impostor"]) for n in names}
        kwargs: dict[str, Any] = {
            "engines": names,
            "weights": {n: float(combo["weights"][n]) for n in names},
            "threshold": float(combo["threshold"]),
            "stats": stats,
        }
        kwargs.update(overrides)
        return cls(**kwargs)

    def fuse(self, distances: Mapping[str, float]) -> float:
        """Weighted mean of standardised distances, on the pooled cosine scale (see module docstring)."""
        total = sum(self.weights[n] for n in self.engines)
        z = sum(self.weights[n] * (distances[n] - self.stats[n].mean) / self.stats[n].std for n in self.engines)
        mean = sum(self.weights[n] * self.stats[n].mean for n in self.engines) / total
        std = sum(self.weights[n] * self.stats[n].std for n in self.engines) / total
        return float(mean + std * z / total)

    def fuse_many(self, distances: Mapping[str, np.ndarray]) -> np.ndarray:
        """Vectorised :meth:`fuse` over arrays of distances (1:N search, calibration)."""
        total = sum(self.weights[n] for n in self.engines)
        z = sum(
            self.weights[n] * (np.asarray(distances[n]) - self.stats[n].mean) / self.stats[n].std for n in self.engines
        )
        mean = sum(self.weights[n] * self.stats[n].mean for n in self.engines) / total
        std = sum(self.weights[n] * self.stats[n].std for n in self.engines) / total
        return np.asarray(mean + std * np.asarray(z) / total, dtype=np.float64)

    def support(self, frames: int) -> int:
        """How many frames must agree: ``max(min_frames, ceil(frame_fraction * frames))``."""
        return max(self.min_frames, math.ceil(self.frame_fraction * frames))


@cache
def _read(path: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(Path(path).read_text(encoding="utf-8"))
    return data


def load_calibration(path: Path = CALIBRATION_PATH) -> dict[str, Any]:
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: run python -m kyc.face.calibration --write")
    return _read(str(path))


def engine_distances(
    a: FaceTemplates | Mapping[str, Template], b: FaceTemplates | Mapping[str, Template], engines: Iterable[str]
) -> dict[str, float]:
    """Per-engine cosine distances; refuses templates from another model version."""
    ta = a.templates if isinstance(a, FaceTemplates) else a
    tb = b.templates if isinstance(b, FaceTemplates) else b
    return {name: ta[name].distance(tb[name]) for name in engines}


def compare(
    a: FaceTemplates | Mapping[str, Template], b: FaceTemplates | Mapping[str, Template], config: VerifierConfig
) -> Decision:
    """1:1 decision between two faces."""
    per_engine = engine_distances(a, b, config.engines)
    distance = config.fuse(per_engine)
    return Decision(distance <= config.threshold, distance, config.threshold, per_engine)


def best_evidence(distances: Sequence[float], config: VerifierConfig) -> tuple[float, int]:
    """The k-th smallest per-frame distance, k = :meth:`VerifierConfig.support`.

    A match then means at least k frames are individually under the threshold: one lucky frame
    (a blink, a compression artefact, a look-alike moment) cannot carry the decision.
    """
    if not distances:
        raise NotEnoughFrames("no frame with a usable face", frames=0)
    k = config.support(len(distances))
    if len(distances) < k:
        raise NotEnoughFrames(f"{len(distances)} usable frames, at least {k} are needed", frames=len(distances))
    ordered = sorted(distances)
    return float(ordered[k - 1]), k


def compare_frames(
    reference: FaceTemplates | Mapping[str, Template],
    frames: Sequence[FaceTemplates | Mapping[str, Template]],
    config: VerifierConfig,
) -> Decision:
    """Verify a sequence of frame templates against a reference (e.g. the ID portrait)."""
    fused = [config.fuse(engine_distances(reference, f, config.engines)) for f in frames]
    distance, used = best_evidence(fused, config)
    return Decision(distance <= config.threshold, distance, config.threshold, {}, used)


def verify_frames(
    reference: FaceTemplates | Mapping[str, Template],
    frames: Iterable[tuple[float, np.ndarray]],
    config: VerifierConfig,
    *,
    detection: DetectionConfig = DEFAULT_DETECTION,
    models_dir: str | None = None,
    extra: int = 2,
) -> Decision:
    """Best evidence of a frame sequence against a reference, with a cascade across frames.

    The first configured engine (put the cheapest first) embeds every frame that passes the
    quality gates; the remaining engines run only on the ``k + extra`` frames it ranks closest,
    and the decision is the k-th smallest fused distance among those. Taking the k-th smallest
    of a subset can only be larger than over all frames, so the cascade is never more lenient
    than running every engine on every frame; it saves the slower engines on most frames.
    """
    first, rest = config.engines[0], config.engines[1:]
    scored: list[tuple[float, np.ndarray, FaceTemplates]] = []
    for _, frame in frames:
        image = from_array(frame)
        try:
            face = analyse(image, detection)
        except FaceError:
            continue  # a blink, a blur, a turned head: the frame is not evidence either way
        templates = embed_face(image, face, (first,), models_dir)
        ref = reference.templates if isinstance(reference, FaceTemplates) else reference
        scored.append((ref[first].distance(templates.templates[first]), image, templates))
    k = config.support(len(scored))
    if len(scored) < k:
        raise NotEnoughFrames(f"{len(scored)} usable frames, at least {k} are needed", frames=len(scored))
    scored.sort(key=lambda item: item[0])
    fused = []
    for _, image, cheap in scored[: k + extra]:
        full = cheap
        if rest:
            more = embed_face(image, cheap.face, rest, models_dir).templates
            full = FaceTemplates(cheap.face, {**cheap.templates, **more})
        fused.append(config.fuse(engine_distances(reference, full, config.engines)))
    distance = sorted(fused)[k - 1]
    return Decision(distance <= config.threshold, distance, config.threshold, {}, k)
