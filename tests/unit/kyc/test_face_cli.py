"""`kyc compare` / `kyc liveness`: one JSON object on stdout, errors as JSON with a non-zero exit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from kyc import models
from kyc.cli import kyc
from kyc.face.calibration import fixtures_dir

models.check_all()  # fails the session loudly when the models are not installed
FIXTURES = fixtures_dir()
IMAGES, VIDEO = FIXTURES / "images", FIXTURES / "video"


def run(*args: str | Path) -> tuple[int, dict[str, object]]:
    result = CliRunner().invoke(kyc, [str(a) for a in args])
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, result.stdout
    return result.exit_code, json.loads(lines[0])


def test_compare_same_person() -> None:
    code, out = run("compare", IMAGES / "obama_01.jpg", IMAGES / "obama_02.jpg")
    assert code == 0
    assert set(out) == {"match", "distance", "threshold"}
    assert out["match"] is True
    assert isinstance(out["distance"], float)
    assert isinstance(out["threshold"], float)


def test_compare_different_east_asian_people() -> None:
    code, out = run("compare", IMAGES / "chen_xiao_01.jpg", IMAGES / "chen_yanxi_01.jpg")
    assert code == 0
    assert out["match"] is False


@pytest.mark.parametrize(
    ("image", "error"),
    [("none_cat.png", "no_face"), ("multi_voc_2faces.jpg", "multiple_faces"), ("../README.md", "unsupported_format")],
)
def test_compare_refusals_are_json_with_non_zero_exit(image: str, error: str) -> None:
    code, out = run("compare", IMAGES / image, IMAGES / "obama_01.jpg")
    assert code != 0
    assert out["error"] == error
    assert str(out["message"]).startswith("IMAGE_A")


def test_compare_with_missing_models_says_what_to_run(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(models.MODELS_DIR_ENV, str(tmp_path))
    from kyc.face.engines import get_engine

    get_engine.cache_clear()
    try:
        code, out = run("compare", IMAGES / "obama_01.jpg", IMAGES / "obama_02.jpg")
    finally:
        get_engine.cache_clear()
    assert code != 0
    assert out["error"] == "models_missing"
    assert "fetch_models.py" in str(out["message"])


def test_liveness_real_and_replay() -> None:
    code, out = run("liveness", VIDEO / "lp_d13_person_real_640x480_6s.mp4")
    assert code == 0
    assert out["live"] is True
    assert isinstance(out["reason"], str)
    code, out = run("liveness", VIDEO / "lp_d13_person_synthetic_still_replay_640x480_6s.mp4")
    assert code == 0
    assert out["live"] is False


def test_liveness_of_something_that_is_not_a_video() -> None:
    code, out = run("liveness", FIXTURES / "README.md")
    assert code != 0
    assert "error" in out
