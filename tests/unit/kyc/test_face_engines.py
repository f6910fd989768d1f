"""Every embedding engine honours the one interface: name, version, dim, unit vectors, cosine distance."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from kyc import models
from kyc.face import errors
from kyc.face.calibration import fixtures_dir
from kyc.face.detect import analyse
from kyc.face.engines import ARCFACE, DLIB_CHIP, ENGINE_NAMES, cosine_distance, dlib_chip, get_engine
from kyc.face.imageio import load_image
from kyc.face.pipeline import Template, crops_for, embed_face, embed_image

models.check_all()  # fails the session loudly when the models are not installed
IMAGES = fixtures_dir() / "images"
DIMS = {"mobilefacenet": 192, "sface": 128, "dlib": 128}


@pytest.fixture(scope="module")
def obama_crops() -> dict[str, np.ndarray]:
    image = load_image(IMAGES / "obama_01.jpg")
    face = analyse(image)
    return {ARCFACE: face.aligned, DLIB_CHIP: dlib_chip(image, face.landmarks)}


@pytest.mark.parametrize("name", ENGINE_NAMES)
def test_engine_interface(name: str, obama_crops: dict[str, np.ndarray]) -> None:
    engine = get_engine(name)
    assert engine.name == name
    assert engine.version
    assert engine.dim == DIMS[name]
    crop = obama_crops[engine.alignment]
    vectors = engine.embed(np.stack([crop, crop[:, ::-1].copy()]))
    assert vectors.shape == (2, engine.dim)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    again = engine.embed(crop[None])
    np.testing.assert_allclose(again[0], vectors[0], atol=1e-5)  # deterministic, batch-independent
    assert 0.0 <= engine.distance(vectors[0], vectors[1]) < 0.5  # a mirrored face is still the face
    assert engine.distance(vectors[0], vectors[1]) == pytest.approx(cosine_distance(vectors[0], vectors[1]))
    assert engine.embed(np.zeros((0, *crop.shape), np.uint8)).shape == (0, engine.dim)


@pytest.mark.parametrize("name", ENGINE_NAMES)
def test_engine_refuses_wrong_crops(name: str) -> None:
    with pytest.raises(ValueError, match="expected"):
        get_engine(name).embed(np.zeros((1, 64, 64, 3), np.uint8))


def test_sface_gets_rgb_not_bgr(obama_crops: dict[str, np.ndarray]) -> None:
    """Channel order changes the embedding, so feeding the documented order matters."""
    engine = get_engine("sface")
    crop = obama_crops[ARCFACE]
    rgb, bgr = engine.embed(np.stack([crop, crop[:, :, ::-1].copy()]))
    assert cosine_distance(rgb, bgr) > 0.02


def test_unknown_engine() -> None:
    with pytest.raises(ValueError, match="unknown face engine"):
        get_engine("facenet512")


def test_crops_are_computed_once_per_alignment() -> None:
    image = load_image(IMAGES / "obama_02.jpg")
    face = analyse(image)
    crops = crops_for(image, face, [get_engine(n) for n in ENGINE_NAMES])
    assert set(crops) == {ARCFACE, DLIB_CHIP}
    assert crops[DLIB_CHIP].shape == (150, 150, 3)


def test_templates_carry_their_model_and_refuse_other_models() -> None:
    result = embed_image(IMAGES / "obama_02.jpg", ENGINE_NAMES)
    templates = result.templates
    assert {t.engine for t in templates.values()} == set(ENGINE_NAMES)
    assert templates["sface"].distance(templates["sface"]) == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(errors.TemplateMismatch):
        templates["sface"].distance(templates["dlib"])
    older = Template("sface", "2019", templates["sface"].vector)
    with pytest.raises(errors.TemplateMismatch):
        templates["sface"].distance(older)


def test_results_cross_process_boundaries() -> None:
    """What the process pool sends back must pickle (frozen dataclasses and arrays only)."""
    image = load_image(IMAGES / "obama_02.jpg")
    result = embed_face(image, analyse(image))
    clone = pickle.loads(pickle.dumps(result))
    np.testing.assert_array_equal(clone.templates["sface"].vector, result.templates["sface"].vector)
    assert clone.face.box == result.face.box
