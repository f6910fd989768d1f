"""Calibrating the engines and the fusion on the shared face fixtures, and measuring FMR/FNMR.

    python -m kyc.face.calibration [--fixtures DIR] [--workers 2] [--cache FILE] [--write]

Which pairs: every fixture photo of one named person (one expected face), with re-scaled or
re-encoded copies of the same photo collapsed to the first file; same-person pairs are all pairs
within an identity, different-person pairs are *all* pairs across identities (East Asian and the
rest together). The East Asian subset is the pairs where both photos have ``group: east_asian``.

What is computed, for each non-empty set of engines (equal weights):
* per engine, mean and std of the cosine distance over different-person pairs (the fusion's
  standardisation);
* the strict threshold: the closest different-person pair minus a margin. A threshold at zero
  false matches on one set of faces does not transfer to other faces, so the margin is measured:
  the identities are split in two halves at random (seeded, 400 times), the zero-false-match
  threshold of one half is applied to the other half, and the margin is the 99th percentile of
  how far the other half's closest different-person pair fell below it (at least 0.25 of the
  impostor std). It is the shift needed to carry a zero-false-match threshold from one set of
  people to a new one, measured on these very faces;
* FMR and FNMR at that threshold, overall and East Asian, plus the equal error rate.

The default engine set is the one with the lowest FNMR at its strict threshold (fewer engines
win ties). ``--write`` stores everything in ``calibration.json`` beside this file, which the
verifier reads and a test reproduces.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import os
import pickle
import sys
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import date
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from kyc.face.engines import ENGINE_NAMES, get_engine
from kyc.face.errors import FaceError
from kyc.face.pipeline import embed_image
from kyc.face.verify import CALIBRATION_PATH, EngineStats, VerifierConfig

FIXTURES_ENV = "BRANCHLESS_FIXTURES"
REPEATS, QUANTILE, MIN_MARGIN_Z, SEED = 400, 0.99, 0.25, 20261127
NON_PERSONS = {"none", "artwork", "unlabelled_group"}
METHOD = (
    "all same-person and all different-person pairs of single-face fixture photos (copies of one photo collapsed); "
    "per engine, impostor mean/std of cosine distance; fused = weighted mean of standardised distances on the pooled "
    "cosine scale; threshold = closest different-person pair minus a margin = 99th percentile over 400 seeded "
    "identity-disjoint half splits of the shift needed to carry a zero-false-match threshold to the other half "
    "(at least 0.25 impostor std); match iff distance <= threshold"
)


def fixtures_dir(path: str | os.PathLike[str] | None = None) -> Path:
    """``path``, else ``$BRANCHLESS_FIXTURES``, else ``../shared/fixtures`` beside the repository."""
    if path is not None:
        return Path(path)
    env = os.environ.get(FIXTURES_ENV)
    return Path(env) if env else Path(__file__).resolve().parents[2].parent / "shared" / "fixtures"


@dataclass(frozen=True)
class FixtureImage:
    file: str
    identity: str
    east_asian: bool


def select_images(manifest: Mapping[str, Any]) -> list[FixtureImage]:
    """Single named faces, near-duplicate copies collapsed onto the first file (see module docstring)."""
    files = [f for f in manifest["files"] if f["kind"] == "image"]
    order = {f["file"]: i for i, f in enumerate(files)}
    parent: dict[str, str] = {}

    def root(name: str) -> str:
        while parent.get(name, name) != name:
            name = parent[name]
        return name

    for f in files:
        for dup in f.get("near_duplicate_of", []):
            a, b = root(f["file"]), root(str(Path(f["file"]).parent / dup))
            if a != b:
                first, later = sorted((a, b), key=lambda n: order.get(n, len(order)))
                parent[later] = first
    chosen: list[FixtureImage] = []
    seen: set[str] = set()
    for f in files:
        identity = f["identity"]
        if not isinstance(identity, str) or identity in NON_PERSONS or f.get("faces_expected") != 1:
            continue
        cluster = root(f["file"])
        if cluster in seen:
            continue
        seen.add(cluster)
        chosen.append(FixtureImage(f["file"], identity, f.get("group") == "east_asian"))
    return chosen


def _embed_one(path: str, engines: tuple[str, ...]) -> dict[str, npt.NDArray[np.float32]] | str:
    try:
        result = embed_image(path, engines)
    except FaceError as exc:
        return exc.code
    return {name: t.vector for name, t in result.templates.items()}


def embed_fixtures(
    root: Path, images: Sequence[FixtureImage], engines: Sequence[str], workers: int = 1, cache: Path | None = None
) -> dict[str, dict[str, npt.NDArray[np.float32]] | str]:
    """Templates (or the refusal code) of every image; ``cache`` keeps them across runs while iterating."""
    key = hashlib.sha256(
        json.dumps(
            [str(root), [i.file for i in images], list(engines), [get_engine(e).version for e in engines]]
        ).encode()
    ).hexdigest()
    if cache is not None and cache.is_file():
        stored = pickle.loads(cache.read_bytes())  # noqa: S301 - a local file this function wrote
        if stored.get("key") == key:
            return dict(stored["embeddings"])
    paths = [str(root / i.file) for i in images]
    names = tuple(engines)
    if workers > 1:
        with ProcessPoolExecutor(workers, mp_context=get_context("forkserver")) as pool:
            results = list(pool.map(_embed_one, paths, [names] * len(paths), chunksize=4))
    else:
        results = [_embed_one(p, names) for p in paths]
    embeddings = {i.file: r for i, r in zip(images, results, strict=True)}
    if cache is not None:
        cache.write_bytes(pickle.dumps({"key": key, "embeddings": embeddings}))
    return embeddings


@dataclass(frozen=True)
class PairSet:
    """All pairs of enrolled fixture images, with per-engine cosine distances."""

    identities: npt.NDArray[np.str_]  # per image
    first: npt.NDArray[np.intp]
    second: npt.NDArray[np.intp]
    same: npt.NDArray[np.bool_]
    east_asian: npt.NDArray[np.bool_]
    distances: dict[str, npt.NDArray[np.float64]]
    refused: dict[str, str]


def build_pairs(images: Sequence[FixtureImage], embeddings: Mapping[str, Any], engines: Sequence[str]) -> PairSet:
    refused = {i.file: str(embeddings[i.file]) for i in images if isinstance(embeddings[i.file], str)}
    kept = [i for i in images if i.file not in refused]
    first, second = np.triu_indices(len(kept), 1)
    ident = np.array([i.identity for i in kept])
    ea = np.array([i.east_asian for i in kept])
    distances = {}
    for name in engines:
        matrix = np.stack([embeddings[i.file][name] for i in kept]).astype(np.float32)
        distances[name] = (1.0 - matrix @ matrix.T)[first, second].astype(np.float64)
    return PairSet(ident, first, second, ident[first] == ident[second], ea[first] & ea[second], distances, refused)


def split_half_margin(scores: npt.NDArray[np.float64], pairs: PairSet, repeats: int = REPEATS) -> float:
    """99th percentile of the shift a zero-false-match threshold needs to carry to unseen people."""
    rng = np.random.default_rng(SEED)
    people = np.unique(pairs.identities)
    impostor = ~pairs.same
    needed = []
    for _ in range(repeats):
        half = np.isin(pairs.identities, rng.choice(people, len(people) // 2, replace=False))
        in_a = half[pairs.first] & half[pairs.second] & impostor
        in_b = ~half[pairs.first] & ~half[pairs.second] & impostor
        needed.append(max(0.0, float(scores[in_a].min() - scores[in_b].min())))
    return float(np.quantile(needed, QUANTILE))


def rates(scores: npt.NDArray[np.float64], same: npt.NDArray[np.bool_], threshold: float) -> dict[str, Any]:
    genuine, impostor = scores[same], scores[~same]
    false_matches, false_rejects = int((impostor <= threshold).sum()), int((genuine > threshold).sum())
    return {
        "fmr": false_matches / max(len(impostor), 1),
        "false_matches": false_matches,
        "impostor_pairs": len(impostor),
        "fnmr": false_rejects / max(len(genuine), 1),
        "false_rejects": false_rejects,
        "genuine_pairs": len(genuine),
    }


def equal_error_rate(scores: npt.NDArray[np.float64], same: npt.NDArray[np.bool_]) -> float:
    genuine, impostor = np.sort(scores[same]), np.sort(scores[~same])
    candidates = np.unique(scores)
    fnmr = 1.0 - np.searchsorted(genuine, candidates, side="right") / len(genuine)
    fmr = np.searchsorted(impostor, candidates, side="right") / len(impostor)
    i = int(np.argmin(np.abs(fnmr - fmr)))
    return float((fnmr[i] + fmr[i]) / 2)


def calibrate(pairs: PairSet, engines: Sequence[str], versions: Mapping[str, str]) -> dict[str, Any]:
    """Everything ``calibration.json`` holds (see the module docstring)."""
    impostor = ~pairs.same
    # Rounded first: the stored constants are exactly the ones every figure below was computed with.
    stats = {
        n: EngineStats(
            round(float(pairs.distances[n][impostor].mean()), 6), round(float(pairs.distances[n][impostor].std()), 6)
        )
        for n in engines
    }
    combinations: dict[str, Any] = {}
    for size in range(1, len(engines) + 1):
        for combo in itertools.combinations(sorted(engines), size):
            config = VerifierConfig(combo, dict.fromkeys(combo, 1.0), 0.0, stats)
            scores = config.fuse_many(pairs.distances)
            pooled_std = float(np.mean([stats[n].std for n in combo]))
            closest = float(scores[impostor].min())
            margin = max(split_half_margin(scores, pairs), MIN_MARGIN_Z * pooled_std)
            threshold = round(closest - margin, 6)
            ea = pairs.east_asian
            combinations["+".join(combo)] = {
                "engines": list(combo),
                "weights": dict.fromkeys(combo, 1.0),
                "closest_impostor": round(closest, 6),
                "margin": round(margin, 6),
                "threshold": threshold,
                "overall": rates(scores, pairs.same, threshold),
                "east_asian": rates(scores[ea], pairs.same[ea], threshold),
                "at_zero_margin": rates(scores, pairs.same, closest - 1e-12),
                "eer": round(equal_error_rate(scores, pairs.same), 6),
            }
    default = min(
        combinations.values(), key=lambda c: (c["overall"]["fnmr"], len(c["engines"]), "dlib" in c["engines"])
    )
    return {
        "created": date.today().isoformat(),  # noqa: DTZ011 - a calendar date for the record
        "method": METHOD,
        "pairs": {
            "images": len(pairs.identities),
            "refused": pairs.refused,
            "same": int(pairs.same.sum()),
            "different": int(impostor.sum()),
            "east_asian_same": int((pairs.same & pairs.east_asian).sum()),
            "east_asian_different": int((impostor & pairs.east_asian).sum()),
        },
        "engines": {
            n: {"version": versions[n], "impostor": {"mean": round(stats[n].mean, 6), "std": round(stats[n].std, 6)}}
            for n in engines
        },
        "combinations": combinations,
        "default": default["engines"],
    }


def run(
    root: Path, engines: Sequence[str] = ENGINE_NAMES, workers: int = 1, cache: Path | None = None
) -> dict[str, Any]:
    manifest = json.loads((root / "manifest.json").read_text(encoding="utf-8"))
    images = select_images(manifest)
    embeddings = embed_fixtures(root, images, engines, workers, cache)
    pairs = build_pairs(images, embeddings, engines)
    return calibrate(pairs, engines, {n: get_engine(n).version for n in engines})


def summary(result: Mapping[str, Any]) -> str:
    lines = [f"{'engines':28s} {'threshold':>9s} {'margin':>7s}  FMR  FNMR overall         FNMR East Asian     EER"]
    for key, c in result["combinations"].items():
        o, e = c["overall"], c["east_asian"]
        lines.append(
            f"{key:28s} {c['threshold']:9.4f} {c['margin']:7.4f}  {o['false_matches']}/{o['impostor_pairs']}"
            f"  {o['false_rejects']}/{o['genuine_pairs']} ({100 * o['fnmr']:.1f}%)"
            f"  {e['false_rejects']}/{e['genuine_pairs']} ({100 * e['fnmr']:.1f}%)  {100 * c['eer']:.1f}%"
        )
    lines.append(
        f"default: {'+'.join(result['default'])}; refused fixture images: {result['pairs']['refused'] or 'none'}"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Calibrate face engines on the shared fixtures")
    parser.add_argument("--fixtures", type=Path, default=None)
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--cache", type=Path, default=None, help="embedding cache file (for iterating)")
    parser.add_argument("--write", action="store_true", help=f"write {CALIBRATION_PATH.name}")
    args = parser.parse_args(argv)
    result = run(fixtures_dir(args.fixtures), ENGINE_NAMES, args.workers, args.cache)
    sys.stdout.write(summary(result) + "\n")
    if args.write:
        CALIBRATION_PATH.write_text(json.dumps(result, indent=1, sort_keys=False) + "\n", encoding="utf-8")
        sys.stdout.write(f"wrote {CALIBRATION_PATH}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
