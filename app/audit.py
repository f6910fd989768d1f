"""The append-only, hash-chained audit log.

Each entry's hash covers its content and the previous entry's hash, so editing,
deleting or reordering any row breaks the chain from that row on, and
``branchless audit verify`` names the first broken entry. Personal data never
enters the log: before/after states are kept only as SHA-256 digests.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import msgspec
from piccolo.engine.postgres import PostgresEngine

from app import context
from app.db import engine, pg_connection, transaction
from app.tables import AuditEntry

GENESIS = "0" * 64
_LOCK_KEY = 0x42_52_41_4E
"""Names the chain's advisory lock on PostgreSQL, taken by the ``audit_append`` function."""
_encoder = msgspec.json.Encoder(order="sorted")


def digest(state: Any) -> str:
    """SHA-256 of a state's canonical JSON; empty for no state."""
    if state is None:
        return ""
    return hashlib.sha256(_encoder.encode(state)).hexdigest()


def _stamp(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def entry_hash(prev_hash: str, fields: dict[str, Any]) -> str:
    body = _encoder.encode(fields)
    return hashlib.sha256(prev_hash.encode() + b"\n" + body).hexdigest()


def _hashed_fields(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "at": _stamp(row["at"]),
        "actor_id": row["actor_id"],
        "actor_role": row["actor_role"],
        "action": row["action"],
        "entity": row["entity"],
        "entity_id": row["entity_id"],
        "before_digest": row["before_digest"],
        "after_digest": row["after_digest"],
        "detail": row["detail"],
        "ip": row["ip"],
        "request_id": row["request_id"],
    }


def entry(
    action: str,
    entity: str,
    entity_id: object = "",
    *,
    before: Any = None,
    after: Any = None,
    detail: dict[str, Any] | None = None,
    actor_id: int | None = None,
    actor_role: str | None = None,
    at: datetime | None = None,
    ctx: context.RequestContext | None = None,
) -> dict[str, Any]:
    """One entry's content, not yet chained: who (from ``ctx``, by default the
    current request's context, unless given), what and when. ``append`` links
    and stores it."""
    ctx = ctx or context.current()
    return {
        "at": at or datetime.now(UTC),
        "actor_id": actor_id if actor_id is not None else ctx.actor_id,
        "actor_role": actor_role if actor_role is not None else ctx.actor_role,
        "action": action,
        "entity": entity,
        "entity_id": str(entity_id),
        "before_digest": digest(before),
        "after_digest": digest(after),
        "detail": _encoder.encode(detail or {}).decode(),
        "ip": ctx.ip,
        "request_id": ctx.request_id,
    }


async def record(
    action: str,
    entity: str,
    entity_id: object = "",
    *,
    before: Any = None,
    after: Any = None,
    detail: dict[str, Any] | None = None,
    actor_id: int | None = None,
    actor_role: str | None = None,
) -> None:
    """Append one entry. Call inside the transaction of the change it records,
    so that the change and its entry commit together or not at all."""
    row = entry(
        action,
        entity,
        entity_id,
        before=before,
        after=after,
        detail=detail,
        actor_id=actor_id,
        actor_role=actor_role,
    )
    await append([row])


_COLUMNS = (
    "id",
    "at",
    "actor_id",
    "actor_role",
    "action",
    "entity",
    "entity_id",
    "before_digest",
    "after_digest",
    "detail",
    "ip",
    "request_id",
    "prev_hash",
    "entry_hash",
)
_ROW_SQL = "(" + ", ".join("{}" for _ in _COLUMNS) + ")"
_INSERT_SQL = f"INSERT INTO audit_entry ({', '.join(_COLUMNS)}) VALUES "  # noqa: S608 - constant names; values are parameters
_SQLITE_HEAD_SQL = "SELECT id, entry_hash AS prev FROM audit_entry ORDER BY id DESC LIMIT 1"


async def append(rows: list[dict[str, Any]]) -> list[int]:
    """Chain and store ``rows`` (built by ``entry``) in the given order, under one
    acquisition of the chain's lock; return their ids.

    Group commits append a whole batch of decisions' entries at once: the lock
    is what serialises every writer of the chain (all processes), so taking it
    once per batch instead of once per entry is what lets writers scale. The
    ids are allocated while the lock is held, so id order is chain order.
    Runs in the caller's transaction (or its own when there is none). On
    PostgreSQL the database function ``audit_append`` does it in one statement
    (migration ``2026-11-27T15:00:00``), so the lock is held only while it runs."""
    if not rows:
        return []
    if isinstance(engine(), PostgresEngine):
        async with pg_connection() as connection:
            ids = await connection.fetchval("SELECT " + pg_append_call(1), *pg_append_args(rows))
        return [int(i) for i in ids]
    async with transaction():  # SQLite: the IMMEDIATE transaction already holds the only write lock
        head = await AuditEntry.raw(_SQLITE_HEAD_SQL)
        prev = head[0]["prev"] if head else GENESIS
        first = int(head[0]["id"]) + 1 if head else 1
        ids = list(range(first, first + len(rows)))
        args = [value for values in _chain(rows, prev, ids) for value in values]
        for start in range(0, len(rows), _ROWS_PER_INSERT):
            chunk = min(_ROWS_PER_INSERT, len(rows) - start)
            n = len(_COLUMNS)
            await AuditEntry.raw(_INSERT_SQL + ", ".join([_ROW_SQL] * chunk), *args[start * n : (start + chunk) * n])
    return ids


_PG_APPEND_PARAMETERS: Final = (
    ("at", "timestamptz"),
    ("actor_id", "integer"),
    ("actor_role", "varchar"),
    ("action", "varchar"),
    ("entity", "varchar"),
    ("entity_id", "varchar"),
    ("before_digest", "varchar"),
    ("after_digest", "varchar"),
    ("detail", "text"),
    ("ip", "varchar"),
    ("request_id", "varchar"),
)


def pg_append_call(first: int) -> str:
    """SQL calling ``audit_append`` on the arrays of ``pg_append_args`` as parameters
    ``$first`` on (PostgreSQL; it returns the entries' ids)."""
    types = [t for _, t in _PG_APPEND_PARAMETERS] + ["text"]
    return "audit_append(" + ", ".join(f"${first + i}::{t}[]" for i, t in enumerate(types)) + ")"


def pg_append_args(rows: list[dict[str, Any]]) -> list[list[Any]]:
    """``rows`` (built by ``entry``) as ``audit_append``'s arrays: one per stored column,
    then each entry's hashed content (the canonical JSON ``entry_hash`` links)."""
    columns = [[row[c] for row in rows] for c, _ in _PG_APPEND_PARAMETERS]
    columns.append([_encoder.encode(_hashed_fields(row)).decode() for row in rows])
    return columns


def _chain(rows: list[dict[str, Any]], prev: str, ids: list[int]) -> list[tuple[Any, ...]]:
    """Link ``rows`` (built by ``entry``) after the entry hashed ``prev``, with the
    given ids (ascending), and return their stored values, ``_COLUMNS`` order
    (SQLite's ``append``, under the database's write lock)."""
    out = []
    for entry_id, row in zip(ids, rows, strict=True):
        row["id"] = entry_id
        row["prev_hash"] = prev
        row["entry_hash"] = prev = entry_hash(prev, _hashed_fields(row))
        out.append(tuple(row[c] for c in _COLUMNS))
    return out


_ROWS_PER_INSERT = 500  # 14 parameters a row: well inside SQLite's and PostgreSQL's limits


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    entries: int
    broken_id: int | None = None
    reason: str = ""


async def verify(batch: int = 2000) -> ChainReport:
    """Walk the chain in id order; report the first entry that does not fit."""
    expected_prev = GENESIS
    seen = 0
    last_id = 0
    while True:
        rows = await AuditEntry.select().where(AuditEntry.id > last_id).order_by(AuditEntry.id).limit(batch)
        if not rows:
            return ChainReport(ok=True, entries=seen)
        for row in rows:
            if row["prev_hash"] != expected_prev:
                return ChainReport(
                    False, seen, row["id"], "previous hash does not match: a row was deleted, inserted or reordered"
                )
            if entry_hash(row["prev_hash"], _hashed_fields(row)) != row["entry_hash"]:
                return ChainReport(False, seen, row["id"], "content does not match its hash: the row was edited")
            expected_prev = row["entry_hash"]
            seen += 1
        last_id = rows[-1]["id"]
