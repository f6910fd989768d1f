"""Who is acting and for which request: set by the middleware, read by audit and logs."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass


@dataclass(frozen=True)
class RequestContext:
    request_id: str = ""
    ip: str = ""
    actor_id: int | None = None
    actor_role: str = ""


# A frozen dataclass: the shared default cannot be mutated.
_current: ContextVar[RequestContext] = ContextVar("branchless_request", default=RequestContext())  # noqa: B039


def current() -> RequestContext:
    return _current.get()


def set_context(ctx: RequestContext) -> None:
    _current.set(ctx)
