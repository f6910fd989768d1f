"""The seam between KYC cases and the face engine.

Functions named ``enrol_portrait`` and ``judge_frames`` run in the CPU pool
(plain data in and out); the rest runs on the event loop. Templates are sealed
with the key ring before they reach the database and opened only here.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
import numpy.typing as npt
from piccolo.query.functions.aggregate import Count, Max

from app.crypto import keyring
from app.settings import get_settings
from kyc.face.detect import analyse
from kyc.face.errors import FaceError, NotEnoughFrames
from kyc.face.imageio import load_image
from kyc.face.liveness import Challenge, ChallengeStep, Missing, Observation, judge_session, observe, passive_check
from kyc.face.pipeline import FaceTemplates, Template, embed_face, embed_image
from kyc.face.search import search
from kyc.face.verify import VerifierConfig, best_evidence, engine_distances

_VECTOR_CONTEXT = "kyc_face_template.vector"
MIN_FRAMES = 3


class FaceProblem(Exception):
    """A face refused by a quality gate, carried out of the pool with its code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(code, message)
        self.code = code
        self.message = message


@lru_cache(maxsize=4)
def _config(engines: str, threshold: float | None) -> VerifierConfig:
    names = tuple(e.strip() for e in engines.split(",") if e.strip())
    extra: dict[str, Any] = {"min_frames": MIN_FRAMES}
    if threshold is not None:
        extra["threshold"] = threshold
    return VerifierConfig.calibrated(names, **extra)


def config() -> VerifierConfig:
    """The engines, fusion and threshold in force (settings ``face_engines``, ``face_threshold``)."""
    settings = get_settings()
    return _config(settings.face_engines, settings.face_threshold)


def threshold() -> float:
    return config().threshold


def _models_dir() -> str:
    return get_settings().models_dir


# --- templates at rest -------------------------------------------------------------


def seal_vector(vector: npt.NDArray[np.float32]) -> str:
    raw = np.asarray(vector, dtype="<f4").tobytes()
    return keyring().encrypt(base64.b64encode(raw).decode(), context=_VECTOR_CONTEXT)


def open_vector(stored: str) -> npt.NDArray[np.float32]:
    raw = base64.b64decode(keyring().decrypt(stored, context=_VECTOR_CONTEXT))
    return np.frombuffer(raw, dtype="<f4").copy()


# --- enrolment (CPU pool) ------------------------------------------------------------


@dataclass(frozen=True)
class Enrolled:
    templates: dict[str, tuple[str, npt.NDArray[np.float32]]]
    """engine -> (model version, L2-normalised vector)"""


def enrol_portrait(image: bytes) -> Enrolled:
    """Quality-gated templates of the portrait's single face, one per engine in force."""
    try:
        found = embed_image(image, config().engines, models_dir=_models_dir())
    except FaceError as exc:
        raise FaceProblem(exc.code, exc.message) from None
    return Enrolled({name: (t.version, t.vector) for name, t in found.templates.items()})


# --- frames: match and liveness (CPU pool) ------------------------------------------------


@dataclass(frozen=True)
class FrameResult:
    distance: float | None
    problem: str | None


@dataclass(frozen=True)
class ChallengeOutcome:
    kind: str
    passed: bool
    detail: str


@dataclass(frozen=True)
class Judged:
    frames: list[FrameResult]
    evidence_distance: float | None
    threshold: float
    matched: bool
    live: bool
    liveness_reason: str
    challenges: list[ChallengeOutcome] = field(default_factory=list)
    passive_live: bool = False
    """The passive check alone (no replayed photo or screen), whatever the challenges gave:
    an attended video session tells "did not perform the prompts" from "not a live person"."""
    passive_reason: str = ""


def plan_of(challenges: list[dict[str, Any]]) -> tuple[ChallengeStep, ...]:
    return tuple(ChallengeStep(Challenge(c["kind"]), float(c["start"]), float(c["end"])) for c in challenges)


def judge_frames(
    frames: list[bytes],
    at_ms: list[int],
    portrait: dict[str, tuple[str, bytes | npt.NDArray[np.float32]]],
    challenges: list[dict[str, Any]],
) -> Judged:
    """Face match (best evidence over the frames) and liveness (passive + the case's
    challenges) of one burst of frames, judged together so they are the same face."""
    cfg = config()
    reference = {
        name: Template(name, version, np.asarray(vec, dtype=np.float32)) for name, (version, vec) in portrait.items()
    }
    results: list[FrameResult] = []
    distances: list[float] = []
    observations: list[Observation | Missing] = []
    for data, ms in zip(frames, at_ms, strict=True):
        t = ms / 1000.0
        try:
            image = load_image(data)
        except FaceError as exc:
            results.append(FrameResult(None, exc.code))
            observations.append(Missing(t, exc.code))
            continue
        observations.append(observe(t, image))
        try:
            face = analyse(image)
            templates: FaceTemplates = embed_face(image, face, cfg.engines, _models_dir())
        except FaceError as exc:
            results.append(FrameResult(None, exc.code))
            continue
        fused = cfg.fuse(engine_distances(reference, templates, cfg.engines))
        distances.append(fused)
        results.append(FrameResult(fused, None))
    try:
        evidence, _ = best_evidence(distances, cfg)
    except NotEnoughFrames:
        evidence = None
    matched = evidence is not None and evidence <= cfg.threshold
    result, steps = judge_session(plan_of(challenges), observations)
    outcomes = [ChallengeOutcome(s.step.kind.value, s.passed, s.reason) for s in steps]
    passive = passive_check(observations)
    return Judged(
        results, evidence, cfg.threshold, matched, result.live, result.reason, outcomes, passive.live, passive.reason
    )


# --- 1:N duplicate search ------------------------------------------------------------------


@dataclass
class _Gallery:
    """Decrypted templates of every enrolled document, one matrix per engine, rows aligned.
    Kept per process and refreshed when the table changes (new rows, erasures)."""

    marker: tuple[int, int] = (-1, -1)
    customers: list[int] = field(default_factory=list)
    matrices: dict[str, npt.NDArray[np.float32]] = field(default_factory=dict)


_GALLERY = _Gallery()


async def _gallery() -> _Gallery:
    from kyc.tables import FaceTemplate

    engines = config().engines
    stats = await FaceTemplate.select(Count(FaceTemplate.id, alias="n"), Max(FaceTemplate.id, alias="m")).first()
    marker = (int(stats["n"] or 0), int(stats["m"] or 0)) if stats else (0, 0)
    if marker == _GALLERY.marker:
        return _GALLERY
    rows = await FaceTemplate.select(
        FaceTemplate.customer, FaceTemplate.document, FaceTemplate.engine, FaceTemplate.vector_enc
    ).where(FaceTemplate.engine.is_in(list(engines)))
    by_doc: dict[int, dict[str, Any]] = {}
    for row in rows:
        entry = by_doc.setdefault(int(row["document"] or 0), {"customer": int(row["customer"])})
        entry[row["engine"]] = open_vector(row["vector_enc"])
    complete = [e for e in by_doc.values() if all(name in e for name in engines)]
    _GALLERY.customers = [e["customer"] for e in complete]
    _GALLERY.matrices = {
        name: (np.stack([e[name] for e in complete]) if complete else np.zeros((0, 1), np.float32)) for name in engines
    }
    _GALLERY.marker = marker
    return _GALLERY


async def find_duplicate(customer_id: int, enrolled: Enrolled) -> int | None:
    """Another customer whose enrolled face matches this one (1:N, vectorised)."""
    gallery = await _gallery()
    if not gallery.customers:
        return None
    query = {name: vec for name, (_, vec) in enrolled.templates.items()}
    for hit in search(query, gallery.matrices, config(), top_k=20):
        other = gallery.customers[hit.index]
        if other != customer_id:
            return other
    return None


def forget_customer(customer_id: int) -> None:
    """Drop the cached gallery so erased templates can never match again."""
    _GALLERY.marker = (-1, -1)
    _GALLERY.customers = []
    _GALLERY.matrices = {}


@dataclass(frozen=True)
class FaceCheck:
    matched: bool
    distance: float | None
    threshold: float
    usable_frames: int


def check_face(frames: list[bytes], portrait: dict[str, tuple[str, bytes | npt.NDArray[np.float32]]]) -> FaceCheck:
    """A fresh face check (e.g. at a signature): best evidence of the frames against
    the enrolled portrait; no liveness challenge (the signer is already proven live)."""
    cfg = config()
    reference = {
        name: Template(name, version, np.asarray(vec, dtype=np.float32)) for name, (version, vec) in portrait.items()
    }
    distances: list[float] = []
    for data in frames:
        try:
            image = load_image(data)
            templates = embed_face(image, analyse(image), cfg.engines, _models_dir())
        except FaceError:
            continue
        distances.append(cfg.fuse(engine_distances(reference, templates, cfg.engines)))
    try:
        evidence, _ = best_evidence(distances, cfg)
    except NotEnoughFrames:
        return FaceCheck(False, None, cfg.threshold, len(distances))
    return FaceCheck(evidence <= cfg.threshold, evidence, cfg.threshold, len(distances))


def warm() -> int:
    """Load the detector and the configured engines in this (pool) process, so that the
    first real face check does not pay for it; returns the process id."""
    import os

    from kyc.face.detect import _models
    from kyc.face.engines import get_engine

    _models()
    for name in config().engines:
        get_engine(name, _models_dir())
    return os.getpid()
