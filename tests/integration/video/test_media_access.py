"""Nobody gets into a session's room, or at its customer's video, without that room's own credentials.

Run against a real Janus in a private namespace (``media_scenario.scenario_access``): two
rooms, a customer publishing in the first; every attempt with the other room's PIN or
secret, without the plugin's admin key or without the API secret is refused with Janus's
own error code.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

Scenario = Callable[[str], dict[str, Any]]


@pytest.fixture(scope="module")
def access(media_scenario: Scenario) -> dict[str, Any]:
    return media_scenario("access")


@pytest.mark.parametrize(
    "attempt",
    ["join_with_other_rooms_pin", "join_without_pin", "subscribe_with_wrong_pin", "destroy_with_other_rooms_secret"],
)
def test_other_rooms_credentials_are_refused(access: dict[str, Any], attempt: str) -> None:
    assert access[attempt] == {"error": "VideoRoomUnauthorized", "code": 433}


def test_a_feed_cannot_be_reached_through_another_room(access: dict[str, Any]) -> None:
    assert access["subscribe_through_other_room"] == {"error": "VideoRoomNoSuchFeed", "code": 428}


def test_rooms_cannot_be_created_without_the_admin_key(access: dict[str, Any]) -> None:
    assert access["create_without_admin_key"] == {"error": "VideoRoomUnauthorized", "code": 433}


def test_the_api_refuses_a_wrong_api_secret(access: dict[str, Any]) -> None:
    assert access["api_with_wrong_secret"] == {"error": "JanusUnauthorized", "code": 403}


def test_refusals_leave_the_room_and_its_customer_alone(access: dict[str, Any]) -> None:
    assert access["room_a_still_exists"] is True
    assert access["participants_of_a"] == ["customer"]
    assert access["subscribe_with_right_pin_streams"] == ["audio", "video"]
