"""The accuracy figures in calibration.json (and the README) are reproduced from the shared fixtures.

Every fixture photo is embedded by every engine once per test session (two worker processes,
~20-40 s), then: the calibration is recomputed from scratch and must equal the committed file
(so its constants come from the data, not from hand-tuning), and the production decision path
(``VerifierConfig.calibrated``) must give the committed false match / false non-match counts,
overall and on the East Asian subset.
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np
import pytest

from kyc import models
from kyc.face.calibration import PairSet, build_pairs, calibrate, embed_fixtures, fixtures_dir, select_images
from kyc.face.engines import ENGINE_NAMES, get_engine
from kyc.face.verify import VerifierConfig, load_calibration

models.check_all()  # fails the session loudly when the models are not installed
FIXTURES = fixtures_dir()
if not (FIXTURES / "manifest.json").is_file():
    raise RuntimeError(f"shared face fixtures not found at {FIXTURES}; set BRANCHLESS_FIXTURES")
COMMITTED: dict[str, Any] = load_calibration()


@pytest.fixture(scope="session")
def pairs() -> PairSet:
    manifest = json.loads((FIXTURES / "manifest.json").read_text())
    images = select_images(manifest)
    embeddings = embed_fixtures(FIXTURES, images, ENGINE_NAMES, workers=min(2, os.cpu_count() or 1))
    return build_pairs(images, embeddings, ENGINE_NAMES)


def test_pair_set_is_every_pair_of_the_fixtures(pairs: PairSet) -> None:
    expected = COMMITTED["pairs"]
    assert pairs.refused == {}
    assert int(pairs.same.sum()) == expected["same"]
    assert int((~pairs.same).sum()) == expected["different"]
    assert int((pairs.same & pairs.east_asian).sum()) == expected["east_asian_same"]
    assert int((~pairs.same & pairs.east_asian).sum()) == expected["east_asian_different"]


def test_calibration_recomputes_to_the_committed_constants(pairs: PairSet) -> None:
    fresh = calibrate(pairs, ENGINE_NAMES, {n: get_engine(n).version for n in ENGINE_NAMES})
    assert fresh["engines"] == COMMITTED["engines"]
    assert fresh["default"] == COMMITTED["default"]
    for key, committed in COMMITTED["combinations"].items():
        ours = fresh["combinations"][key]
        assert ours["threshold"] == pytest.approx(committed["threshold"], abs=2e-6), key
        for subset in ("overall", "east_asian", "at_zero_margin"):
            assert ours[subset] == committed[subset], (key, subset)


@pytest.mark.parametrize("key", sorted(COMMITTED["combinations"]))
def test_decision_path_reproduces_the_reported_rates(pairs: PairSet, key: str) -> None:
    config = VerifierConfig.calibrated(key.split("+"))
    scores = config.fuse_many(pairs.distances)
    matched = scores <= config.threshold
    reported = COMMITTED["combinations"][key]
    for subset, mask in (("overall", np.ones_like(pairs.same)), ("east_asian", pairs.east_asian)):
        same, different = pairs.same & mask, ~pairs.same & mask
        assert int((matched & different).sum()) == reported[subset]["false_matches"], (key, subset)
        assert int((~matched & same).sum()) == reported[subset]["false_rejects"], (key, subset)


def test_default_operating_point_is_strict(pairs: PairSet) -> None:
    """No different-person pair of the fixtures matches at the default threshold, with a margin to spare."""
    config = VerifierConfig.calibrated()
    scores = config.fuse_many(pairs.distances)
    closest_impostor = float(scores[~pairs.same].min())
    assert (
        closest_impostor - config.threshold
        >= COMMITTED["combinations"]["+".join(sorted(config.engines))]["margin"] - 1e-6
    )
    assert COMMITTED["combinations"]["+".join(sorted(config.engines))]["overall"]["fnmr"] < 0.1
