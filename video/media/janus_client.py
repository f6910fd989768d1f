"""Async client of Janus's HTTP API: sessions, plugin handles, transactions and the event long-poll.

Why HTTP with long-poll (not WebSockets): the API stays on loopback behind a secret,
only the app talks to it, and plain request/response is easy to reason about and
to time out. Each ``JanusSession`` runs one long-poll task that routes events to
the waiting transaction (asynchronous plugin requests answer "ack" first and the
result arrives later as an event) or to the handle's event buffer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections import deque
from typing import Any

import httpx
import msgspec

from video.media.errors import (
    JanusError,
    JanusSessionNotFound,
    JanusTimeout,
    JanusUnavailable,
    core_error,
    videoroom_error,
)

logger = logging.getLogger(__name__)

Json = dict[str, Any]
LONG_POLL_S = 30.0
"""Janus holds a long-poll GET this long before answering with a keepalive."""


class PluginResponse(msgspec.Struct, frozen=True):
    """What a plugin answered: its ``data`` and, for negotiations, a JSEP (SDP offer/answer)."""

    data: Json
    jsep: Json | None = None


class JanusEvent(msgspec.Struct, frozen=True):
    """An event not tied to a pending request: ``webrtcup``, ``hangup``, ``media``, plugin news."""

    janus: str
    data: Json
    jsep: Json | None = None
    received_at: float = 0.0


def _transaction() -> str:
    return secrets.token_urlsafe(12)


class JanusTransport:
    """The HTTP connection to one Janus instance: base URL, API secret, one httpx client.

    Share one transport among all sessions of an app process; ``trust_env=False`` so that
    a proxy configured in the environment never sees loopback API traffic.
    """

    def __init__(self, base_url: str, api_secret: str, *, request_timeout_s: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._secret = api_secret
        self.request_timeout_s = request_timeout_s
        limits = httpx.Limits(max_connections=512, max_keepalive_connections=64)
        self._http = httpx.AsyncClient(trust_env=False, limits=limits, timeout=request_timeout_s)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> JanusTransport:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def post(self, path: str, payload: Json, *, timeout_s: float | None = None) -> Json:
        """POST one API message (secret and transaction added) and return Janus's JSON answer."""
        body = {**payload, "apisecret": self._secret}
        body.setdefault("transaction", _transaction())
        try:
            response = await self._http.post(
                f"{self.base_url}{path}", json=body, timeout=timeout_s or self.request_timeout_s
            )
        except httpx.TimeoutException as exc:
            raise JanusTimeout(f"Janus did not answer {payload.get('janus')!r} in time") from exc
        except httpx.TransportError as exc:
            raise JanusUnavailable(f"Janus API unreachable at {self.base_url}: {exc}") from exc
        return self._decode(response)

    async def poll(self, session_id: int, *, max_events: int = 10) -> list[Json]:
        """One long-poll GET: up to ``max_events`` events, or ``[]`` after Janus's keepalive."""
        params = {"maxev": str(max_events), "rid": str(time.time_ns()), "apisecret": self._secret}
        try:
            response = await self._http.get(
                f"{self.base_url}/{session_id}", params=params, timeout=LONG_POLL_S + self.request_timeout_s
            )
        except httpx.TimeoutException as exc:
            raise JanusTimeout("Janus long-poll timed out") from exc
        except httpx.TransportError as exc:
            raise JanusUnavailable(f"Janus API unreachable at {self.base_url}: {exc}") from exc
        if not response.content.strip():
            return []  # Janus closes a pending long-poll with an empty body when the session goes
        try:
            decoded: Any = response.json()
        except ValueError as exc:
            raise JanusError(response.status_code, f"long-poll answer not JSON: {response.text[:200]}") from exc
        items: list[Json] = decoded if isinstance(decoded, list) else [decoded]
        for item in items:
            if item.get("janus") == "error":
                error = item.get("error", {})
                raise core_error(int(error.get("code", 0)), str(error.get("reason", "")))
        return [item for item in items if item.get("janus") != "keepalive"]

    async def info(self) -> Json:
        """``info`` (server name, version, plugins): the readiness probe."""
        return await self.post("", {"janus": "info"})

    async def create_session(self, *, keepalive_s: float = 25.0) -> JanusSession:
        answer = await self.post("", {"janus": "create"})
        session = JanusSession(self, int(answer["data"]["id"]), keepalive_s=keepalive_s)
        session.start()
        return session

    @staticmethod
    def _decode(response: httpx.Response) -> Json:
        try:
            answer: Json = response.json()
        except ValueError as exc:
            raise JanusError(response.status_code, f"not JSON: {response.text[:200]}") from exc
        if answer.get("janus") == "error":
            error = answer.get("error", {})
            raise core_error(int(error.get("code", 0)), str(error.get("reason", "")))
        return answer


class JanusSession:
    """One Janus session: plugin handles, the long-poll task and keepalives.

    Janus destroys a session after ``session_timeout`` without requests; the poll
    loop and a periodic keepalive keep it alive until ``destroy()``.
    """

    def __init__(self, transport: JanusTransport, session_id: int, *, keepalive_s: float = 25.0) -> None:
        self.transport = transport
        self.id = session_id
        self._keepalive_s = keepalive_s
        self._handles: dict[int, JanusHandle] = {}
        self._pending: dict[str, asyncio.Future[Json]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self.closed = asyncio.Event()
        self.failure: BaseException | None = None

    @property
    def path(self) -> str:
        return f"/{self.id}"

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._poll_loop(), name=f"janus-poll-{self.id}"),
            asyncio.create_task(self._keepalive_loop(), name=f"janus-keepalive-{self.id}"),
        ]

    async def attach(self, plugin: str) -> JanusHandle:
        answer = await self.transport.post(self.path, {"janus": "attach", "plugin": plugin})
        handle = JanusHandle(self, int(answer["data"]["id"]), plugin)
        self._handles[handle.id] = handle
        return handle

    async def keepalive(self) -> None:
        await self.transport.post(self.path, {"janus": "keepalive"})

    async def destroy(self) -> None:
        """Destroy the session in Janus (which hangs up and detaches its handles), stop the tasks."""
        if self.closed.is_set():
            return
        with contextlib.suppress(JanusError, JanusUnavailable, JanusTimeout):
            await self.transport.post(self.path, {"janus": "destroy"})
        self._close(JanusSessionNotFound(458, "session destroyed"))
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            try:
                await task
            except asyncio.CancelledError:
                pass
            except Exception:  # a task that already failed: the session is gone either way
                logger.debug("janus session %s task ended with an error", self.id, exc_info=True)

    async def __aenter__(self) -> JanusSession:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.destroy()

    async def send(self, handle: JanusHandle, body: Json, jsep: Json | None, timeout_s: float) -> PluginResponse:
        """Send a plugin message; wait for the synchronous answer or for the event after "ack"."""
        if self.closed.is_set():
            raise self.failure if isinstance(self.failure, Exception) else JanusSessionNotFound(458, "closed")
        transaction = _transaction()
        future: asyncio.Future[Json] = asyncio.get_running_loop().create_future()
        self._pending[transaction] = future
        payload: Json = {"janus": "message", "body": body, "transaction": transaction}
        if jsep is not None:
            payload["jsep"] = jsep
        try:
            answer = await self.transport.post(handle.path, payload, timeout_s=timeout_s)
            if answer.get("janus") == "ack":
                answer = await asyncio.wait_for(future, timeout_s)
        except TimeoutError as exc:
            raise JanusTimeout(f"no answer to {body.get('request')!r} within {timeout_s:.0f} s") from exc
        finally:
            self._pending.pop(transaction, None)
        plugindata = answer.get("plugindata", {}).get("data", {})
        if "error_code" in plugindata:
            raise videoroom_error(int(plugindata["error_code"]), str(plugindata.get("error", "")))
        return PluginResponse(data=plugindata, jsep=answer.get("jsep"))

    def _route(self, event: Json) -> None:
        transaction = event.get("transaction")
        if event.get("janus") == "event" and transaction in self._pending:
            future = self._pending[transaction]
            if not future.done():
                future.set_result(event)
            return
        handle = self._handles.get(int(event.get("sender", 0) or 0))
        if handle is None:
            logger.debug("janus event for unknown handle: %s", event.get("janus"))
            return
        if event.get("janus") == "detached":
            self._handles.pop(handle.id, None)
        handle.push(
            JanusEvent(
                janus=str(event.get("janus")),
                data=event.get("plugindata", {}).get("data", {}) or {k: v for k, v in event.items() if k != "jsep"},
                jsep=event.get("jsep"),
                received_at=time.time(),
            )
        )

    async def _poll_loop(self) -> None:
        failures = 0
        while not self.closed.is_set():
            try:
                events = await self.transport.poll(self.id)
                failures = 0
            except (JanusTimeout, JanusUnavailable) as exc:
                failures += 1
                if failures >= 3:
                    self._close(exc)
                    return
                await asyncio.sleep(0.5 * failures)
                continue
            except JanusError as exc:
                self._close(exc)
                return
            for event in events:
                self._route(event)

    async def _keepalive_loop(self) -> None:
        while not self.closed.is_set():
            await asyncio.sleep(self._keepalive_s)
            with contextlib.suppress(JanusTimeout, JanusUnavailable):
                try:
                    await self.keepalive()
                except JanusError as exc:
                    self._close(exc)

    def _close(self, reason: BaseException) -> None:
        """Mark the session dead: fail waiting requests, tell every handle."""
        if self.closed.is_set():
            return
        self.failure = reason
        self.closed.set()
        for future in self._pending.values():
            if not future.done():
                future.set_exception(reason)
        for handle in self._handles.values():
            handle.push(JanusEvent(janus="session-lost", data={"reason": str(reason)}, received_at=time.time()))


class JanusHandle:
    """A plugin handle: plugin requests, trickle ICE, hangup/detach and a bounded event buffer."""

    MAX_BUFFERED_EVENTS = 256

    def __init__(self, session: JanusSession, handle_id: int, plugin: str) -> None:
        self.session = session
        self.id = handle_id
        self.plugin = plugin
        self._events: deque[JanusEvent] = deque(maxlen=self.MAX_BUFFERED_EVENTS)
        self._wakeup = asyncio.Event()

    @property
    def path(self) -> str:
        return f"/{self.session.id}/{self.id}"

    async def request(self, body: Json, *, jsep: Json | None = None, timeout_s: float | None = None) -> PluginResponse:
        return await self.session.send(self, body, jsep, timeout_s or self.session.transport.request_timeout_s)

    async def trickle(self, candidate: Json | None) -> None:
        """Forward one ICE candidate (``candidate``/``sdpMid``/``sdpMLineIndex``) or ``None`` for "done"."""
        payload: Json = {"janus": "trickle", "candidate": candidate if candidate is not None else {"completed": True}}
        await self.session.transport.post(self.path, payload)

    async def hangup(self) -> None:
        await self.session.transport.post(self.path, {"janus": "hangup"})

    async def detach(self) -> None:
        with contextlib.suppress(JanusError):
            await self.session.transport.post(self.path, {"janus": "detach"})

    def push(self, event: JanusEvent) -> None:
        if len(self._events) == self._events.maxlen:
            logger.warning("janus handle %s dropped an unread event", self.id)
        self._events.append(event)
        self._wakeup.set()

    async def next_event(self, timeout_s: float | None = None) -> JanusEvent:
        """The oldest unread event; raises ``JanusTimeout`` if none arrives in time."""
        while not self._events:
            self._wakeup.clear()
            try:
                await asyncio.wait_for(self._wakeup.wait(), timeout_s)
            except TimeoutError as exc:
                raise JanusTimeout(f"no event on handle {self.id} within {timeout_s} s") from exc
        return self._events.popleft()

    async def wait_for(self, janus: str, timeout_s: float, *, key: str | None = None) -> JanusEvent:
        """Skip events until one of type ``janus`` (and, if given, with ``key`` in its data) arrives."""
        deadline = time.monotonic() + timeout_s
        while True:
            event = await self.next_event(max(0.0, deadline - time.monotonic()))
            if event.janus == janus and (key is None or key in event.data):
                return event
