"""A real server process and a real Chromium (Debian's), driven by Playwright."""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SHOTS = Path(__file__).parent / "screenshots"
FIXTURES = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def server(cli_env: dict[str, str]) -> Iterator[str]:
    """``branchless serve`` on the test database, on a free loopback port."""
    port = _free_port()
    proc = subprocess.Popen(
        [".venv/bin/branchless", "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=cli_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(f"{base}/health", timeout=1):
                break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                err = proc.stderr.read().decode() if proc.stderr else ""
                proc.kill()
                proc.wait()
                if proc.stderr:
                    proc.stderr.close()
                raise RuntimeError(f"server did not start: {err[-2000:]}") from None
            time.sleep(0.2)
    yield base
    proc.terminate()
    proc.wait(timeout=15)
    if proc.stderr:
        proc.stderr.close()


@pytest.fixture(scope="session")
def playwright() -> Iterator[Any]:
    """One Playwright driver for the session (its sync API owns this thread's loop)."""
    if not Path(CHROMIUM).exists():
        raise RuntimeError("Debian's chromium is missing: run `make system-test-deps`")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        yield pw


@pytest.fixture(scope="session")
def browser(playwright: Any) -> Iterator[Any]:
    b = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
    yield b
    b.close()


@pytest.fixture(scope="session")
def camera_browser(playwright: Any) -> Iterator[Any]:
    """Chromium whose fake camera plays a recording of the person in the KYC portrait fixture."""
    camera = FIXTURES / "video" / "lp_d13_person_real_640x480_6s.mjpeg"
    args = [
        *CHROMIUM_ARGS,
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-video-capture={camera}",
    ]
    b = playwright.chromium.launch(executable_path=CHROMIUM, args=args, headless=True)
    yield b
    b.close()


@pytest.fixture
def shots() -> Path:
    SHOTS.mkdir(exist_ok=True)
    return SHOTS
