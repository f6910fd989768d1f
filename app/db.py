"""The database engine chosen by ``DATABASE_URL``: embedded SQLite or PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from piccolo.engine.base import Engine
from piccolo.engine.postgres import PostgresEngine
from piccolo.engine.sqlite import SQLiteEngine, TransactionType

from app.settings import Settings


def make_engine(settings: Settings) -> Engine:  # type: ignore[type-arg]
    """Build the Piccolo engine for the configured database."""
    if settings.is_postgres:
        return PostgresEngine(config={"dsn": settings.database_url}, log_queries=False)
    path = settings.sqlite_path
    path.parent.mkdir(parents=True, exist_ok=True)
    # A generous busy timeout: SQLite serialises writers, and the embedded mode
    # runs web requests and background jobs in one process.
    return SQLiteEngine(path=str(path), timeout=30)


def engine() -> Engine:  # type: ignore[type-arg]
    """The engine every table uses (piccolo_conf builds it from the settings)."""
    from piccolo_conf import DB

    return DB


@asynccontextmanager
async def transaction() -> AsyncIterator[None]:
    """One unit of work: everything inside commits together or not at all.

    SQLite takes its write lock at the start (IMMEDIATE) so two writers never
    deadlock upgrading a read lock; PostgreSQL uses its default isolation.
    """
    db = engine()
    if isinstance(db, SQLiteEngine):
        async with db.transaction(transaction_type=TransactionType.immediate):
            yield
    else:
        async with db.transaction():
            yield


async def _reset(connection: Any) -> None:
    """What a connection needs on its way back to the pool: only a rollback of a transaction
    left open. asyncpg's default also runs ``RESET ALL; CLOSE ALL; UNLISTEN *;
    pg_advisory_unlock_all()`` on every release (a second round trip per query); this pool's
    connections set no session state, hold no cursors or listeners, and take only
    transaction-scoped advisory locks."""
    if connection.is_in_transaction():
        await connection.execute("ROLLBACK")


async def start_pool() -> None:
    db = engine()
    if isinstance(db, PostgresEngine):
        await db.start_connection_pool(min_size=2, max_size=20, reset=_reset)


@asynccontextmanager
async def pg_connection() -> AsyncIterator[Any]:
    """An asyncpg connection of the PostgreSQL engine, for the few hot paths that speak
    to asyncpg directly (prepared statements, no query building): the current
    transaction's connection inside a ``transaction()``, else one from the pool (or a
    fresh one where no pool runs, as in scripts and tests)."""
    db = engine()
    assert isinstance(db, PostgresEngine), "pg_connection is for PostgreSQL"
    current = db.current_transaction.get()
    if current is not None:
        yield current.connection
    elif db.pool is not None:
        async with db.pool.acquire() as connection:
            yield connection
    else:
        connection = await db.get_new_connection()
        try:
            yield connection
        finally:
            await connection.close()


async def close_pool() -> None:
    db = engine()
    if isinstance(db, PostgresEngine):
        await db.close_connection_pool()


async def ping() -> None:
    """Raise unless the database answers a trivial query."""
    await engine().run_ddl("SELECT 1")


def json_value(value: Any) -> Any:
    """A JSON column's value as Python data: Piccolo hands it back as text unless a
    query asks otherwise, and as given when the row object was just built."""
    return json.loads(value) if isinstance(value, str) else value


def database_name(url: str) -> str:
    """The database part of a PostgreSQL URL, or the SQLite file name."""
    if url.startswith("sqlite:///"):
        return Path(url.removeprefix("sqlite:///")).name
    return urlsplit(url).path.lstrip("/")
