"""1:1 decisions at the default engines and threshold, fusion, multi-frame evidence and 1:N search."""

from __future__ import annotations

import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from kyc import models
from kyc.face import errors
from kyc.face.calibration import fixtures_dir
from kyc.face.frames import video_frames
from kyc.face.pipeline import FaceTemplates, embed_image
from kyc.face.search import best_matches, cosine_distances, search
from kyc.face.verify import (
    EngineStats,
    VerifierConfig,
    best_evidence,
    compare,
    compare_frames,
    load_calibration,
    verify_frames,
)

models.check_all()  # fails the session loudly when the models are not installed
FIXTURES = fixtures_dir()
DEFAULT = VerifierConfig.calibrated()


def face(name: str) -> FaceTemplates:
    return embed_image(FIXTURES / "images" / name, DEFAULT.engines)


@pytest.fixture(scope="module")
def portrait() -> FaceTemplates:
    return face("lp_d13_person_portrait.jpg")


def test_default_engines_come_from_calibration() -> None:
    data = load_calibration()
    assert list(DEFAULT.engines) == data["default"]
    assert DEFAULT.threshold == data["combinations"]["+".join(sorted(DEFAULT.engines))]["threshold"]


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("obama_01.jpg", "obama_02.jpg", True),
        ("biden_01.jpg", "biden_02.jpg", True),
        ("chen_weiting_01.jpg", "chen_weiting_02.jpg", True),
        ("obama_01.jpg", "biden_01.jpg", False),
        ("chen_xiao_01.jpg", "chen_yanxi_01.jpg", False),  # dlib puts these at 0.41
        ("hu_jintao_01.jpg", "kim_jin_sun_02.jpg", False),  # dlib's closest different-person pair
        ("faceai_meinv_01.png", "sashihara_rino_01.jpg", False),
    ],
)
def test_match_and_non_match_at_the_defaults(a: str, b: str, same: bool) -> None:
    decision = compare(face(a), face(b), DEFAULT)
    assert decision.match is same
    assert decision.threshold == DEFAULT.threshold
    assert set(decision.as_public()) == {"match", "distance", "threshold"}


def test_single_engine_distance_is_its_cosine_distance() -> None:
    a, b = face("obama_01.jpg"), face("obama_02.jpg")
    config = VerifierConfig.calibrated(["sface"])
    decision = compare(a, b, config)
    assert decision.distance == pytest.approx(a.templates["sface"].distance(b.templates["sface"]))


def test_fusion_is_the_weighted_mean_of_standardised_distances() -> None:
    stats = {"a": EngineStats(0.9, 0.1), "b": EngineStats(0.8, 0.2)}
    config = VerifierConfig(("a", "b"), {"a": 1.0, "b": 3.0}, 0.5, stats)
    za, zb = (0.5 - 0.9) / 0.1, (0.4 - 0.8) / 0.2
    z = (1 * za + 3 * zb) / 4
    pooled_mean, pooled_std = (0.9 + 3 * 0.8) / 4, (0.1 + 3 * 0.2) / 4
    assert config.fuse({"a": 0.5, "b": 0.4}) == pytest.approx(pooled_mean + pooled_std * z)
    many = config.fuse_many({"a": np.array([0.5, 0.9]), "b": np.array([0.4, 0.8])})
    assert many[0] == pytest.approx(config.fuse({"a": 0.5, "b": 0.4}))
    assert many[1] == pytest.approx(pooled_mean)


def test_configuration_is_validated() -> None:
    stats = {"a": EngineStats(0.9, 0.1)}
    with pytest.raises(ValueError, match="engine"):
        VerifierConfig((), {}, 0.5, stats)
    with pytest.raises(ValueError, match="positive weight"):
        VerifierConfig(("a",), {"a": 0.0}, 0.5, stats)
    with pytest.raises(ValueError, match="no calibrated threshold"):
        VerifierConfig.calibrated(["sface", "facenet"])


def test_one_lucky_frame_does_not_carry_the_decision() -> None:
    config = VerifierConfig.calibrated(min_frames=3, frame_fraction=0.3)
    low, high = config.threshold - 0.1, config.threshold + 0.2
    distance, k = best_evidence([low] + [high] * 9, config)
    assert (distance, k) == (pytest.approx(high), 3)
    distance, _ = best_evidence([low, low, low] + [high] * 7, config)
    assert distance <= config.threshold
    with pytest.raises(errors.NotEnoughFrames):
        best_evidence([low, low], config)


def test_video_of_the_portrait_person_matches_and_an_impostor_does_not(portrait: FaceTemplates) -> None:
    video = FIXTURES / "video" / "lp_d13_person_real_640x480_6s.mp4"
    decision = verify_frames(portrait, video_frames(video, max_fps=5), DEFAULT)
    assert decision.match
    assert decision.frames_used >= DEFAULT.min_frames
    impostor = verify_frames(face("obama_01.jpg"), video_frames(video, max_fps=5), DEFAULT)
    assert not impostor.match


def test_cascade_is_never_more_lenient_than_all_engines_on_all_frames(portrait: FaceTemplates) -> None:
    video = FIXTURES / "video" / "lp_d13_person_real_640x480_6s.mp4"
    frames = list(video_frames(video, max_fps=3))
    from kyc.face.pipeline import embed_frame

    full = compare_frames(portrait, [embed_frame(f, DEFAULT.engines) for _, f in frames], DEFAULT)
    cascade = verify_frames(portrait, frames, DEFAULT, extra=0)
    assert cascade.distance >= full.distance - 1e-9
    assert cascade.match == full.match


unit_rows = hnp.arrays(
    np.float32, st.tuples(st.integers(1, 60), st.just(8)), elements=st.floats(-1, 1, width=32)
).filter(lambda m: bool((np.linalg.norm(m, axis=1) > 1e-3).all()))


@settings(max_examples=150, deadline=None)
@given(gallery=unit_rows, pick=st.integers(0, 10_000))
def test_vectorised_distances_equal_row_by_row(gallery: np.ndarray, pick: int) -> None:
    gallery = gallery / np.linalg.norm(gallery, axis=1, keepdims=True)
    query = gallery[pick % len(gallery)]
    expected = [1.0 - float(np.dot(row.astype(np.float64), query.astype(np.float64))) for row in gallery]
    np.testing.assert_allclose(cosine_distances(gallery, query), expected, atol=1e-5)


@settings(max_examples=300, deadline=None)
@given(
    distances=hnp.arrays(np.float64, st.integers(0, 80), elements=st.sampled_from([0.1, 0.2, 0.3, 0.45, 0.5, 0.9])),
    threshold=st.sampled_from([0.0, 0.2, 0.45, 0.6, 2.0]),
    top_k=st.integers(0, 10),
)
def test_best_matches_equals_brute_force(distances: np.ndarray, threshold: float, top_k: int) -> None:
    """Selection rule, ties included: under the threshold, closest first, lower row first, at most top_k."""
    brute = sorted((d, i) for i, d in enumerate(distances.tolist()) if d <= threshold)[:top_k]
    assert [(h.distance, h.index) for h in best_matches(distances, threshold, top_k)] == brute


def test_fused_search_flags_an_enrolled_duplicate() -> None:
    rng = np.random.default_rng(7)
    enrolled = {"obama": face("obama_01.jpg"), "chen": face("chen_weiting_01.jpg"), "biden": face("biden_01.jpg")}
    names = list(enrolled) + [f"noise{i}" for i in range(2000)]
    galleries = {}
    for engine in DEFAULT.engines:
        dim = enrolled["obama"].templates[engine].vector.shape[0]
        noise = rng.normal(size=(2000, dim)).astype(np.float32)
        rows = np.vstack([[enrolled[n].templates[engine].vector for n in enrolled], noise])
        galleries[engine] = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    probe = face("obama_02.jpg")
    hits = search({e: probe.templates[e].vector for e in DEFAULT.engines}, galleries, DEFAULT)
    assert [names[h.index] for h in hits] == ["obama"]
    stranger = face("john_lennon_01.jpg")
    assert search({e: stranger.templates[e].vector for e in DEFAULT.engines}, galleries, DEFAULT) == []


def test_search_over_100k_templates_is_fast() -> None:
    rng = np.random.default_rng(1)
    galleries = {}
    query = {}
    for engine, dim in (("mobilefacenet", 192), ("sface", 128)):
        rows = rng.normal(size=(100_000, dim)).astype(np.float32)
        galleries[engine] = rows / np.linalg.norm(rows, axis=1, keepdims=True)
        query[engine] = galleries[engine][123]
    start = time.perf_counter()
    hits = search(query, galleries, DEFAULT)
    elapsed = time.perf_counter() - start
    assert hits[0].index == 123
    assert elapsed < 1.0  # ~20-40 ms measured; generous for a shared CI machine
