"""JSON logs with the request id, and personal data kept out of them.

Every record passes through ``redact``: fields named like secrets or personal
data are replaced, and identity-card, mobile and bank-card numbers are masked
wherever they appear in a message.
"""

from __future__ import annotations

import logging
import re
import sys
from typing import Any

import structlog

from app import context

SENSITIVE_KEYS = frozenset(
    {
        "password",
        "token",
        "authorization",
        "cookie",
        "set-cookie",
        "secret",
        "id_number",
        "phone",
        "bank_account",
        "face_template",
        "embedding",
    }
)
_PATTERNS = [
    re.compile(r"(?<![\dA-Za-z])\d{17}[\dXx](?![\dA-Za-z])"),  # resident identity card
    re.compile(r"(?<!\d)(?:\+?86)?1[3-9]\d{9}(?!\d)"),  # mainland mobile
    re.compile(r"(?<!\d)\d{12,19}(?!\d)"),  # bank card / account
]


def mask_text(text: str) -> str:
    for pattern in _PATTERNS:
        text = pattern.sub(lambda m: "*" * (len(m.group()) - 4) + m.group()[-4:], text)
    return text


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, dict):
        return {k: ("[redacted]" if _sensitive(k) else _scrub(v)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_scrub(v) for v in value]
    return value


def _sensitive(key: object) -> bool:
    name = str(key).lower()
    return any(s in name for s in SENSITIVE_KEYS)


def redact(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    return {k: ("[redacted]" if _sensitive(k) else _scrub(v)) for k, v in event.items()}


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at the time of the record, so that
    redirecting stderr (a supervisor, a test's capture) needs no reconfiguration."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _: Any) -> None:
        pass


def add_request_id(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    """The current request's id (set by the request-context middleware), if any."""
    request_id = context.current().request_id
    if request_id:
        event.setdefault("request_id", request_id)
    return event


def configure_logging(level: str = "info", json: bool = True) -> None:
    """Route structlog and the standard library (uvicorn, litestar) through one pipeline."""
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        add_request_id,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        redact,
    ]
    structlog.configure(
        # filter_by_level first: an event below the level is dropped before the timestamp,
        # redaction and the rest run (the access line costs nothing at "warning").
        processors=[structlog.stdlib.filter_by_level, *shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    renderer: Any = structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )
    handler = _StderrHandler()
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "litestar"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # The access line is ours (with request id and actor); uvicorn's would repeat it.
    logging.getLogger("uvicorn.access").disabled = True
    # httpx logs every request at info: with the media server's long-polls that is a line a
    # second per session; its warnings and errors still come through.
    logging.getLogger("httpx").setLevel(max(root.level, logging.WARNING))


def get_logger(name: str) -> Any:
    return structlog.stdlib.get_logger(name)
