"""The signalling WebSocket without media: who is admitted, the first messages, errors, leaving.

Litestar's ``TestClient`` runs the app (and its database pool) in a thread of its own, so
these tests are synchronous and reach the database through the client's portal.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from litestar.exceptions import WebSocketDisconnect
from litestar.testing import TestClient

from tests.helpers import Person, bearer, make_staff
from tests.integration.video_sessions.conftest import active_session, customer_ready

ORIGIN = "http://testserver.local"
WAIT_S = 10.0


@pytest.fixture
def tc() -> Iterator[TestClient[Any]]:
    from app.factory import create_app

    with TestClient(app=create_app(), timeout=WAIT_S) as client:
        yield client


def call(tc: TestClient[Any], fn: Any, *args: Any) -> Any:
    """Run a coroutine function on the app's own event loop (where its database pool lives)."""
    return tc.blocking_portal.call(fn, *args)


def cookie(tc: TestClient[Any], person: Person) -> dict[str, str]:
    """The page session cookie of a logged-in browser, and its same-site Origin."""
    from app.middleware import SESSION_COOKIE
    from app.security import TokenKind, issue_token

    async def session_token() -> str:
        token, _ = await issue_token(person.account_id, TokenKind.session, timedelta(minutes=10))
        return token

    return {"cookie": f"{SESSION_COOKIE}={call(tc, session_token)}", "origin": ORIGIN}


def join(tc: TestClient[Any], person: Person) -> int:
    headers = call(tc, bearer, person.account_id)
    r = tc.post("/api/video/sessions", json={"purpose": "identity", "recordingConsent": True}, headers=headers)
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


def session_row(tc: TestClient[Any], session_id: int) -> Any:
    from video.tables import VideoSession

    async def load() -> Any:
        return await VideoSession.objects().where(VideoSession.id == session_id).first()

    return call(tc, load)


def refused(tc: TestClient[Any], url: str, headers: dict[str, str]) -> int:
    with pytest.raises(WebSocketDisconnect) as caught, tc.websocket_connect(url, headers=headers):
        pass
    return int(caught.value.code)


def customer(tc: TestClient[Any]) -> Person:
    """Built on the app's loop: the fixtures' loop must not touch the app's database pool."""
    person: Person = call(tc, customer_ready)
    return person


def staff(tc: TestClient[Any], role: str = "account_manager") -> Person:
    person: Person = call(tc, make_staff, role)
    return person


def url_of(session_id: int) -> str:
    return f"/ws/video/sessions/{session_id}"


def test_the_customer_is_greeted_and_may_leave(tc: TestClient[Any]) -> None:
    alice = customer(tc)
    session_id = join(tc, alice)
    with tc.websocket_connect(url_of(session_id), headers=cookie(tc, alice)) as ws:
        hello = ws.receive_json(timeout=WAIT_S)
        assert hello["type"] == "hello"
        assert hello["role"] == "customer"
        assert hello["iceServers"] == []
        assert (hello["session"]["id"], hello["session"]["state"]) == (session_id, "waiting")
        assert hello["session"]["queuePosition"] == 1

        ws.send_text("this is not json")
        error = ws.receive_json(timeout=WAIT_S)
        assert (error["type"], error["error"]) == ("error", "bad_message")
        ws.send_json(["a", "list"])
        assert ws.receive_json(timeout=WAIT_S)["error"] == "bad_message"

        ws.send_json({"type": "publish", "sdp": "v=0\r\n"})
        error = ws.receive_json(timeout=WAIT_S)
        assert (error["type"], error["error"]) == ("error", "not_active")

        ws.send_json({"type": "leave"})
        ended = ws.receive_json(timeout=WAIT_S)
        assert (ended["type"], ended["reason"]) == ("ended", "customer_left")
        assert (ended["session"]["state"], ended["session"]["endReason"]) == ("cancelled", "customer_left")
        with pytest.raises(WebSocketDisconnect):  # then the server closes
            ws.receive_json(timeout=WAIT_S)
    row = session_row(tc, session_id)
    assert (row.state, row.end_reason) == ("cancelled", "customer_left")
    # an ended session admits nobody
    assert refused(tc, url_of(session_id), cookie(tc, alice)) == 4409


def test_a_bearer_token_without_origin_is_admitted(tc: TestClient[Any]) -> None:
    alice = customer(tc)
    session_id = join(tc, alice)
    with tc.websocket_connect(url_of(session_id), headers=call(tc, bearer, alice.account_id)) as ws:
        assert ws.receive_json(timeout=WAIT_S)["role"] == "customer"


def test_only_participants_are_admitted(tc: TestClient[Any]) -> None:
    alice, bob, manager = customer(tc), customer(tc), staff(tc)
    session_id = join(tc, alice)
    url = url_of(session_id)
    assert refused(tc, url, cookie(tc, bob)) == 4403
    assert refused(tc, url, cookie(tc, manager)) == 4403  # not accepted by them
    assert refused(tc, url, cookie(tc, staff(tc, "admin"))) == 4403
    assert refused(tc, url, cookie(tc, staff(tc, "risk_officer"))) == 4403
    assert refused(tc, url_of(999_999_999), cookie(tc, alice)) == 4403
    assert refused(tc, url, {"origin": ORIGIN}) == 4401  # anonymous


def test_cross_origin_handshakes_are_refused(tc: TestClient[Any]) -> None:
    alice = customer(tc)
    session_id = join(tc, alice)
    headers = {**cookie(tc, alice), "origin": "https://evil.example"}
    assert refused(tc, url_of(session_id), headers) == 4403
    assert session_row(tc, session_id).state == "waiting"


def test_the_accepting_manager_is_greeted_as_manager(tc: TestClient[Any]) -> None:
    alice, manager = customer(tc), staff(tc)
    session_id = call(tc, active_session, alice, manager)
    with tc.websocket_connect(url_of(session_id), headers=cookie(tc, manager)) as ws:
        hello = ws.receive_json(timeout=WAIT_S)
        assert (hello["type"], hello["role"]) == ("hello", "manager")
        assert hello["session"]["managerId"] == manager.account_id
        # the database says active, but this process holds no media for it
        ws.send_json({"type": "publish", "sdp": "v=0\r\n"})
        assert ws.receive_json(timeout=WAIT_S)["error"] == "not_active"
    other = staff(tc)
    assert refused(tc, url_of(session_id), cookie(tc, other)) == 4403


def test_a_second_connection_replaces_the_first(tc: TestClient[Any]) -> None:
    alice = customer(tc)
    session_id = join(tc, alice)
    headers = cookie(tc, alice)
    with tc.websocket_connect(url_of(session_id), headers=headers) as first:
        assert first.receive_json(timeout=WAIT_S)["type"] == "hello"
        with tc.websocket_connect(url_of(session_id), headers=headers) as second:
            assert second.receive_json(timeout=WAIT_S)["type"] == "hello"
            replaced = first.receive_json(timeout=WAIT_S)
            assert (replaced["type"], replaced["error"]) == ("error", "replaced")
