"""1:N search of a face against every enrolled template, vectorised.

A duplicate-identity check compares one new face with every template on file. Done pair by pair
in Python that is ~1 s per 100,000 templates; as one matrix-vector product per engine (unit
vectors, so cosine distance is ``1 - G @ q``) it is a few milliseconds. Templates are stored as
one float32 matrix per engine, row ``i`` of every matrix belonging to the same enrolled face.
Storage and identity numbers are the caller's business; this returns row indices.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from kyc.face.verify import VerifierConfig

Matrix = npt.NDArray[np.float32]


@dataclass(frozen=True)
class Hit:
    index: int
    distance: float


def cosine_distances(gallery: Matrix, query: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """``1 - gallery @ query`` for unit-vector rows; shape ``(N,)``."""
    g = np.asarray(gallery, dtype=np.float32)
    q = np.asarray(query, dtype=np.float32)
    if g.ndim != 2 or q.ndim != 1 or g.shape[1] != q.shape[0]:
        raise ValueError(f"gallery {g.shape} and query {q.shape} do not fit")
    return (1.0 - g @ q).astype(np.float64)


def best_matches(distances: npt.ArrayLike, threshold: float, top_k: int = 10) -> list[Hit]:
    """Rows at or under ``threshold``, closest first, at most ``top_k`` (ties: lower index first)."""
    d = np.asarray(distances, dtype=np.float64)
    under = np.flatnonzero(d <= threshold)
    if under.size == 0 or top_k <= 0:
        return []
    if under.size > top_k:  # keep the top_k smallest values and every tie with the last of them
        values = d[under]
        under = under[values <= np.partition(values, top_k - 1)[top_k - 1]]
    order = np.lexsort((under, d[under]))[:top_k]
    return [Hit(int(i), float(d[i])) for i in under[order]]


def search(
    query: Mapping[str, npt.ArrayLike],
    galleries: Mapping[str, Matrix],
    config: VerifierConfig,
    top_k: int = 10,
) -> list[Hit]:
    """Enrolled faces that match ``query`` under ``config`` (fused distance, its threshold)."""
    sizes = {len(galleries[name]) for name in config.engines}
    if len(sizes) != 1:
        raise ValueError("every engine's gallery must have the same number of rows")
    if sizes == {0}:
        return []
    per_engine = {name: cosine_distances(galleries[name], query[name]) for name in config.engines}
    return best_matches(config.fuse_many(per_engine), config.threshold, top_k)
