"""Test set-up: a fresh database per test run, SQLite by default, PostgreSQL when
``BRANCHLESS_TEST_DB=postgres`` (the suite's second pass). The database is
created, migrated once, and dropped at the end of the run.

Nothing from the project is imported at module level: the settings (and with
them Piccolo's engine) must see the test database's URL first.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import secrets
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

PG_ADMIN_DSN = os.environ.get("BRANCHLESS_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
BACKEND = os.environ.get("BRANCHLESS_TEST_DB", "sqlite")
_WORK = Path(tempfile.mkdtemp(prefix="branchless-test-"))
_PG_NAME = f"branchless_test_{os.getpid()}_{secrets.token_hex(3)}"


def _pg_url(name: str) -> str:
    base, _, _ = PG_ADMIN_DSN.rpartition("/")
    return f"{base}/{name}"


async def _pg_admin(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


os.environ["BRANCHLESS_ENVIRONMENT"] = "test"
os.environ["BRANCHLESS_VAR_DIR"] = str(_WORK / "var")
os.environ["BRANCHLESS_LOG_JSON"] = "true"
os.environ["BRANCHLESS_CPU_WORKERS"] = "1"
if BACKEND == "postgres":
    os.environ["DATABASE_URL"] = _pg_url(_PG_NAME)
elif BACKEND == "sqlite":
    os.environ["DATABASE_URL"] = f"sqlite:///{_WORK / 'test.sqlite3'}"
else:
    raise RuntimeError(f"BRANCHLESS_TEST_DB must be sqlite or postgres, not {BACKEND!r}")


def pytest_configure(config: pytest.Config) -> None:
    if BACKEND == "postgres":
        asyncio.run(_pg_admin(f'CREATE DATABASE "{_PG_NAME}"'))
    from app.cli import migrate_all

    async def go() -> None:
        from app import db

        await db.start_pool()
        try:
            await migrate_all()
        finally:
            await db.close_pool()

    with contextlib.redirect_stdout(io.StringIO()):
        asyncio.run(go())


def pytest_unconfigure(config: pytest.Config) -> None:
    if BACKEND == "postgres":
        asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{_PG_NAME}" WITH (FORCE)'))
    shutil.rmtree(_WORK, ignore_errors=True)


@pytest.fixture(scope="session")
def backend() -> str:
    return BACKEND


@pytest.fixture(scope="session")
def work_dir() -> Path:
    return _WORK


@pytest.fixture(scope="session")
def cli_env() -> dict[str, str]:
    """Environment for running ``branchless`` as a subprocess on the test database."""
    return {**os.environ}


@pytest.fixture
async def app() -> Any:
    from app.factory import create_app

    return create_app()


@contextlib.asynccontextmanager
async def running(app: Any) -> AsyncIterator[None]:
    """Hold the app's lifespan open in a task of its own: pytest-asyncio sets a
    fixture up and tears it down in different tasks, which anyio's task groups
    (inside Litestar's lifespan) refuse."""
    started, stop = asyncio.Event(), asyncio.Event()

    async def hold() -> None:
        async with app.lifespan():
            started.set()
            await stop.wait()

    task = asyncio.create_task(hold())
    waiter = asyncio.create_task(started.wait())
    await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        waiter.cancel()
        task.result()  # start-up failed: raise its error here
    try:
        yield
    finally:
        stop.set()
        await task


@pytest.fixture
async def client(app: Any) -> AsyncIterator[Any]:
    """An HTTP client on the app, in the test's own event loop (so the test and
    the app share one database pool), with the app's lifespan around it."""
    import httpx

    async with running(app):
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as c:
            yield c


@pytest.fixture
def uid() -> str:
    """A short unique token for emails and numbers, so tests never collide."""
    return secrets.token_hex(4)
