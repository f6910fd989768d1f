"""The hub's answer to a browser's ``resubscribe`` (ICE restart of its receiving connection).

Janus's offers for an ICE restart and for a new subscription look alike to a browser (one
DTLS certificate for every handle), so the hub says which it sent; and once Janus has hung
up the subscription's PeerConnection (its DTLS failed during a network blip), only a new
subscription can bring the video back.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from types import SimpleNamespace
from typing import Any

import pytest

from video.hub import LiveSession
from video.media.errors import JanusTimeout
from video.media.janus_client import JanusEvent
from video.media.videoroom import Subscriber


class FakeHandle:
    def __init__(self) -> None:
        self.events: asyncio.Queue[JanusEvent] = asyncio.Queue()

    async def next_event(self, timeout_s: float | None = None) -> JanusEvent:
        try:
            return await asyncio.wait_for(self.events.get(), timeout_s)
        except TimeoutError as exc:
            raise JanusTimeout("no event") from exc

    def emit(self, janus: str) -> None:
        self.events.put_nowait(JanusEvent(janus=janus, data={}, jsep=None, received_at=0.0))


class FakeSubscriber:
    joined: list[FakeSubscriber] = []

    def __init__(self, feed_id: int) -> None:
        self.feed_id = feed_id
        self.handle = FakeHandle()
        self.offer = {"type": "offer", "sdp": f"v=0 new-{len(self.joined)}"}
        self.restarts = 0
        self.closed = False
        self.joined.append(self)

    async def restart_ice(self) -> dict[str, Any]:
        self.restarts += 1
        return {"type": "offer", "sdp": "v=0 restart"}

    async def close(self) -> None:
        self.closed = True


@pytest.fixture
async def live(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[LiveSession, list[dict[str, Any]]]]:
    FakeSubscriber.joined = []

    async def join(_janus: Any, _room_id: int, *, pin: str, feed_id: int) -> FakeSubscriber:
        return FakeSubscriber(feed_id)

    monkeypatch.setattr(Subscriber, "join", join)
    room = SimpleNamespace(room_id=1, pin="pin", secret="secret")
    session = LiveSession(None, session_id=1, case_id=1, janus=None, admin=None, room=room)  # type: ignore[arg-type]
    told: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        told.append(message)

    session.people["manager"].send = send
    customer = session.people["customer"]
    customer.publisher = SimpleNamespace(id=42)  # type: ignore[assignment]
    customer.publishing = True
    yield session, told
    session.ended = True
    for person in session.people.values():
        for task in list(person.tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def _until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(2.0):
        while not condition():
            await asyncio.sleep(0.01)


async def test_a_live_subscription_restarts_ice_and_says_so(live: tuple[LiveSession, list[dict[str, Any]]]) -> None:
    session, told = live
    await session._offer_subscription("manager")
    first = FakeSubscriber.joined[0]
    first.handle.emit("webrtcup")
    await _until(lambda: session.people["manager"].receiving)
    await session._offer_subscription("manager", restart=True)
    assert [m["restart"] for m in told] == [False, True]
    assert told[1]["sdp"] == "v=0 restart"
    assert first.restarts == 1
    assert len(FakeSubscriber.joined) == 1


async def test_a_subscription_janus_hung_up_is_replaced_not_restarted(
    live: tuple[LiveSession, list[dict[str, Any]]],
) -> None:
    session, told = live
    await session._offer_subscription("manager")
    first = FakeSubscriber.joined[0]
    first.handle.emit("webrtcup")
    await _until(lambda: session.people["manager"].receiving)
    first.handle.emit("hangup")
    await _until(lambda: not session.people["manager"].receiving)
    await session._offer_subscription("manager", restart=True)
    assert [m["restart"] for m in told] == [False, False]
    assert first.restarts == 0
    assert first.closed
    assert len(FakeSubscriber.joined) == 2
    assert told[1]["sdp"] == FakeSubscriber.joined[1].offer["sdp"]


async def test_a_subscription_that_never_came_up_is_replaced(live: tuple[LiveSession, list[dict[str, Any]]]) -> None:
    session, told = live
    await session._offer_subscription("manager")
    await session._offer_subscription("manager", restart=True)
    assert [m["restart"] for m in told] == [False, False]
    assert FakeSubscriber.joined[0].restarts == 0
