"""``branchless kyc ...``: operator commands for face verification and liveness.

Each command prints exactly one JSON object on stdout, so scripts can parse it; a refusal (no
face, several faces, unreadable image, models not installed) is a JSON object with ``error`` and
``message`` and a non-zero exit status. Work runs in this process: a CLI call is one request.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

EXIT_REFUSED = 1
EXIT_SETUP = 3


def _emit(payload: dict[str, Any], code: int = 0) -> None:
    click.echo(json.dumps(payload, ensure_ascii=False))
    sys.exit(code)


def _engines(value: str | None) -> tuple[str, ...] | None:
    return tuple(e.strip() for e in value.split(",") if e.strip()) if value else None


@click.group(name="kyc")
def kyc() -> None:
    """Identity proofing: face comparison and liveness."""


@kyc.command()
@click.argument("image_a", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("image_b", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--engines", default=None, help="comma-separated engines (default: the calibrated set)")
@click.option("--models-dir", default=None, help="models directory (default $BRANCHLESS_MODELS_DIR or var/models)")
def compare(image_a: Path, image_b: Path, engines: str | None, models_dir: str | None) -> None:
    """Compare the faces in two JPEG/PNG images: {"match", "distance", "threshold"}."""
    from kyc.face.errors import FaceError
    from kyc.face.pipeline import embed_image
    from kyc.face.verify import VerifierConfig
    from kyc.face.verify import compare as decide
    from kyc.models import ModelError, ModelsMissingError

    try:
        config = VerifierConfig.calibrated(_engines(engines))
        faces = []
        for label, path in (("IMAGE_A", image_a), ("IMAGE_B", image_b)):
            try:
                faces.append(embed_image(path, config.engines, models_dir=models_dir))
            except FaceError as exc:
                _emit({"error": exc.code, "message": f"{label}: {exc.message}"}, EXIT_REFUSED)
    except ModelError as exc:
        code = "models_missing" if isinstance(exc, ModelsMissingError) else "model_integrity"
        _emit({"error": code, "message": str(exc)}, EXIT_SETUP)
    except ValueError as exc:
        _emit({"error": "invalid_configuration", "message": str(exc)}, EXIT_SETUP)
    _emit(decide(faces[0], faces[1], config).as_public())


@kyc.command()
@click.argument("video", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--max-fps", default=15.0, show_default=True, help="analyse at most this many frames per second")
def liveness(video: Path, max_fps: float) -> None:
    """Passive liveness of a video file: {"live", "reason"}."""
    from kyc.face.errors import FaceError
    from kyc.face.liveness import check_video

    if not video.is_file():
        _emit({"error": "not_found", "message": f"no such file: {video}"}, EXIT_REFUSED)
    try:
        result = check_video(video, max_fps=max_fps)
    except FaceError as exc:
        _emit({"error": exc.code, "message": exc.message}, EXIT_REFUSED)
    _emit(result.as_public())
