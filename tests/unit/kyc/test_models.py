"""Model files: location, manifest, sha256 checks, and the converted models' shapes."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from kyc import models

# The whole session fails here, loudly, when `make install` (scripts/fetch_models.py) has not run.
INSTALLED = models.check_all()
ROOT = Path(__file__).resolve().parents[3]


def _fetch_script() -> Any:
    spec = importlib.util.spec_from_file_location("fetch_models", ROOT / "scripts" / "fetch_models.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def model_copy(tmp_path: Path) -> Path:
    src = models.models_dir()
    for name in ("manifest.json", "mobilefacenet.onnx", "sface.onnx"):
        shutil.copy(src / name, tmp_path / name)
    return tmp_path


def test_installed_models_match_the_pinned_sources() -> None:
    assert {m.name for m in INSTALLED} == {"mobilefacenet", "sface"}
    for model in INSTALLED:
        assert model.source_sha256 == models.SOURCES[model.name].member_sha256
        assert models.sha256_file(model.path) == model.sha256


def test_directory_resolution(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(models.MODELS_DIR_ENV, raising=False)
    assert models.models_dir() == Path("var/models")
    monkeypatch.setenv(models.MODELS_DIR_ENV, str(tmp_path))
    assert models.models_dir() == tmp_path
    assert models.models_dir("elsewhere") == Path("elsewhere")


def test_missing_directory_says_what_to_run(tmp_path: Path) -> None:
    with pytest.raises(models.ModelsMissingError, match=r"fetch_models\.py"):
        models.locate("sface", tmp_path)


def test_missing_file_is_refused(model_copy: Path) -> None:
    (model_copy / "sface.onnx").unlink()
    with pytest.raises(models.ModelsMissingError, match="missing"):
        models.locate("sface", model_copy)


def test_tampered_file_is_refused(model_copy: Path) -> None:
    data = bytearray((model_copy / "mobilefacenet.onnx").read_bytes())
    data[len(data) // 2] ^= 0x01
    (model_copy / "mobilefacenet.onnx").write_bytes(bytes(data))
    with pytest.raises(models.ModelIntegrityError, match="sha256"):
        models.load_bytes("mobilefacenet", model_copy)
    with pytest.raises(models.ModelIntegrityError):
        models.locate("mobilefacenet", model_copy)


def test_manifest_naming_another_source_is_refused(model_copy: Path) -> None:
    manifest = json.loads((model_copy / "manifest.json").read_text())
    manifest["models"]["sface"]["source_sha256"] = "0" * 64
    (model_copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(models.ModelIntegrityError, match="pinned source"):
        models.locate("sface", model_copy)


def test_fetch_script_sees_an_intact_install_as_done(model_copy: Path) -> None:
    fetch = _fetch_script()
    assert fetch.up_to_date(model_copy, fold_int8=True)
    (model_copy / "sface.onnx").write_bytes(b"not a model")
    assert not fetch.up_to_date(model_copy, fold_int8=True)


def test_fetch_script_refuses_a_wrong_hash() -> None:
    fetch = _fetch_script()
    with pytest.raises(SystemExit, match="REFUSED"):
        fetch._require("a" * 64, "b" * 64, "thing")


def test_mobilefacenet_batch_dimension_is_dynamic() -> None:
    from kyc.face.engines import get_engine

    engine = get_engine("mobilefacenet")
    chips = np.random.default_rng(3).integers(0, 256, size=(5, 112, 112, 3), dtype=np.uint8)
    batched = engine.embed(chips)
    singles = np.concatenate([engine.embed(chips[i : i + 1]) for i in range(5)])
    assert batched.shape == (5, 192)
    np.testing.assert_allclose(batched, singles, atol=1e-5)
