"""Runs media scenarios inside a private network namespace and hands their JSON findings to the tests.

Every WebRTC test here runs under ``unshare --net`` (see ``video.media.netns``): inside, only
loopback and a veth pair on 192.0.2.0/24 exist, so nothing outside this machine can be
addressed. If the namespace cannot be created (not root, no CAP_SYS_ADMIN) or Janus is not
installed, the tests FAIL with the reason (``netns_runner``): a skipped media test would hide
a broken set-up.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.integration.video.netns_runner import run_scenario

SCENARIO_MODULE = "tests.integration.video.media_scenario"


@pytest.fixture(scope="module")
def media_work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="module")
def media_scenario(media_work: Path) -> Callable[[str], dict[str, Any]]:
    """Runs each named scenario once per module and caches its findings."""
    cache: dict[str, dict[str, Any]] = {}

    def run(name: str) -> dict[str, Any]:
        if name not in cache:
            cache[name] = run_scenario(SCENARIO_MODULE, name, media_work)
        return cache[name]

    return run
