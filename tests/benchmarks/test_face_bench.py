"""Face verification cost per 640x480 frame on one core, 1:N search time, and a worker's memory.

Run with ``-s`` to see the table. Target from the spec: at most 60 ms median per verification frame
(detect + landmarks + quality gates + align + every embedding in use). The process is pinned to
one CPU and onnxruntime/OpenCV run single-threaded, as in a process-pool worker. Figures are
printed; ``BRANCHLESS_BENCH_ENFORCE=1`` fails on a missed target (off by default: the machine's
2 cores are shared).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import cv2
import numpy as np
import pytest

from kyc import models
from kyc.face.calibration import fixtures_dir
from kyc.face.detect import analyse, detect_boxes
from kyc.face.engines import get_engine
from kyc.face.frames import video_frames
from kyc.face.pipeline import embed_frame, embed_image
from kyc.face.search import search
from kyc.face.verify import VerifierConfig, verify_frames

models.check_all()
VIDEO = fixtures_dir() / "video" / "lp_d13_person_real_640x480_6s.mp4"
PORTRAIT = fixtures_dir() / "images" / "lp_d13_person_portrait.jpg"
TARGET_MS = 60.0
ENFORCE = os.environ.get("BRANCHLESS_BENCH_ENFORCE") == "1"


@pytest.fixture(scope="module", autouse=True)
def one_core() -> Iterator[None]:
    allowed = os.sched_getaffinity(0)
    threads = cv2.getNumThreads()
    os.sched_setaffinity(0, {min(allowed)})
    cv2.setNumThreads(1)
    yield
    cv2.setNumThreads(threads)
    os.sched_setaffinity(0, allowed)


def _median_ms(fn: Callable[[np.ndarray], object], frames: list[np.ndarray]) -> float:
    fn(frames[0])
    times = []
    for frame in frames:
        start = time.perf_counter()
        fn(frame)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def test_time_per_verification_frame() -> None:
    frames = [f for _, f in video_frames(VIDEO, max_fps=5)]
    config = VerifierConfig.calibrated()
    face = analyse(frames[0])
    crops = np.stack([face.aligned])
    rows = {
        "detect (HOG, reduced scale)": _median_ms(detect_boxes, frames),
        "detect + landmarks + gates + align": _median_ms(analyse, frames),
    }
    for name in ("mobilefacenet", "sface"):
        engine = get_engine(name)
        rows[f"  {name} embedding"] = _median_ms(lambda _f, e=engine: e.embed(crops), frames)
    full = _median_ms(lambda f: embed_frame(f, config.engines), frames)
    rows[f"FRAME, default engines ({'+'.join(config.engines)})"] = full
    rows["frame, with dlib as well"] = _median_ms(lambda f: embed_frame(f, (*config.engines, "dlib")), frames[:8])

    reference = embed_image(PORTRAIT, config.engines)
    video = list(video_frames(VIDEO, max_fps=15))
    start = time.perf_counter()
    decision = verify_frames(reference, video, config)
    rows[f"video cascade, per frame ({len(video)} frames, 2nd engine on {config.support(len(video)) + 2})"] = (
        (time.perf_counter() - start) * 1000 / len(video)
    )
    print("\nface verification, one core, 640x480 (median ms)")
    for label, value in rows.items():
        print(f"  {label:62s} {value:7.1f}")
    print(f"  target per frame: {TARGET_MS:.0f} ms -> {'met' if full <= TARGET_MS else 'MISSED'}")
    assert decision.match
    if ENFORCE:
        assert full <= TARGET_MS


def test_one_to_n_search_100k() -> None:
    config = VerifierConfig.calibrated()
    rng = np.random.default_rng(0)
    galleries = {}
    for name in config.engines:
        rows = rng.normal(size=(100_000, get_engine(name).dim)).astype(np.float32)
        galleries[name] = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    query = {name: galleries[name][4242] for name in config.engines}
    search(query, galleries, config)
    times = []
    for _ in range(7):
        start = time.perf_counter()
        hits = search(query, galleries, config)
        times.append((time.perf_counter() - start) * 1000)
    print(f"\n1:N search, 100,000 templates ({'+'.join(config.engines)}): {statistics.median(times):.1f} ms median")
    assert hits[0].index == 4242


def test_worker_memory() -> None:
    """Resident memory of a fresh process after loading every default model and verifying a frame."""
    script = (
        "import json, cv2\n"
        "from kyc.face.frames import video_frames\n"
        "from kyc.face.pipeline import embed_frame\n"
        f"frame = next(iter(video_frames({str(VIDEO)!r})))[1]\n"
        "embed_frame(frame)\n"
        "status = dict(line.split(':', 1) for line in open('/proc/self/status'))\n"
        "print(json.dumps({k: int(status[k].split()[0]) // 1024 for k in ('VmRSS', 'VmHWM')}))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120)
    memory = json.loads(out.stdout.strip().splitlines()[-1])
    print(
        f"\nworker process memory (default engines loaded, one frame done): RSS {memory['VmRSS']} MB, "
        f"peak {memory['VmHWM']} MB"
    )
    assert memory["VmRSS"] > 0
