"""Start a scenario module under ``unshare --net`` and return the JSON it wrote; fail loudly otherwise.

Shared by the media integration tests and the video benchmark. A missing tool or a
namespace that cannot be created fails the test with the reason: skipping would hide a
broken CI set-up.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from video.media.netns import NamespaceUnavailable, python_module_argv, run_in_private_namespace

REPO = Path(__file__).resolve().parents[3]


def require_media_tools() -> None:
    missing = [tool for tool in ("janus", "janus-pp-rec", "unshare", "ip") if shutil.which(tool) is None]
    if missing:
        pytest.fail(f"media tests need {missing}: apt-get install janus janus-tools iproute2 util-linux", pytrace=False)


def run_scenario(module: str, name: str, work: Path, *, timeout_s: float = 240.0) -> dict[str, Any]:
    """Run ``python -m module name --work DIR --out FILE`` in a fresh private namespace."""
    require_media_tools()
    out = work / f"{name}.json"
    argv = python_module_argv(module, name, "--work", str(work / name), "--out", str(out))
    try:
        result = run_in_private_namespace(argv, timeout_s=timeout_s, cwd=str(REPO))
    except NamespaceUnavailable as exc:
        pytest.fail(f"cannot run media tests in a private network namespace: {exc}", pytrace=False)
    if result.returncode != 0 or not out.exists():
        pytest.fail(
            f"media scenario {name!r} failed (exit {result.returncode}):\n"
            f"--- stdout ---\n{result.stdout[-4000:]}\n--- stderr ---\n{result.stderr[-6000:]}",
            pytrace=False,
        )
    data: dict[str, Any] = json.loads(out.read_text())
    return data
