"""How an analysis worker ends, against real Janus in a private namespace (``scenario_lifecycle``).

Every way out must leave no process behind: the worker exits with code 0 and says why.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

Scenario = Callable[[str], dict[str, Any]]


@pytest.fixture(scope="module")
def lifecycle(media_scenario: Scenario) -> dict[str, Any]:
    return media_scenario("lifecycle")


def test_the_caller_can_stop_an_analysis(lifecycle: dict[str, Any]) -> None:
    stopped = lifecycle["stopped_by_caller"]
    assert stopped["reason"] == "stopped"
    assert stopped["frames"] > 0
    assert stopped["exitcode"] == 0


def test_the_customer_leaving_ends_the_analysis(lifecycle: dict[str, Any]) -> None:
    left = lifecycle["customer_left"]
    assert left["reason"] == "publisher_left"
    assert left["frames"] > 0
    assert left["detected_after_s"] < 8.0  # presence is checked every 2 s
    assert left["exitcode"] == 0


def test_an_unknown_feed_ends_at_once(lifecycle: dict[str, Any]) -> None:
    unknown = lifecycle["unknown_feed"]
    assert unknown["reason"] == "publisher_left"
    assert unknown["frames"] == 0
    assert unknown["exitcode"] == 0


def test_janus_down_is_a_clear_error(lifecycle: dict[str, Any]) -> None:
    assert lifecycle["janus_down"] == "JanusUnavailable"
