"""Batched audit appends (group commits) keep one verifiable chain under concurrency."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from app import audit, context
from app.db import transaction
from app.tables import AuditEntry


async def test_concurrent_batches_and_single_entries_chain_in_id_order() -> None:
    last = await AuditEntry.select(AuditEntry.id).order_by(AuditEntry.id, ascending=False).first()
    start = last["id"] if last else 0

    async def batch(k: int) -> list[int]:
        ctx = context.RequestContext(request_id=f"batch-{k:04d}", ip="127.0.0.1", actor_id=k, actor_role="customer")
        async with transaction():
            return await audit.append(
                [audit.entry("test.batched", "thing", f"{k}-{i}", after={"i": i}, ctx=ctx) for i in range(5)]
            )

    async def single(k: int) -> None:
        async with transaction():
            await audit.record("test.single", "thing", k)

    results = await asyncio.gather(*(batch(k) for k in range(6)), *(single(k) for k in range(4)))
    batches = [r for r in results if r is not None]
    for ids in batches:
        assert ids == list(range(ids[0], ids[0] + 5))  # a batch's entries are consecutive
    rows = await AuditEntry.select().where(AuditEntry.id > start).order_by(AuditEntry.id)
    assert len(rows) == 6 * 5 + 4
    for before, after in itertools.pairwise(rows):
        assert after["prev_hash"] == before["entry_hash"]
    by_request = {r["entity_id"]: r for r in rows if r["action"] == "test.batched"}
    assert by_request["3-2"]["request_id"] == "batch-0003"
    assert by_request["3-2"]["actor_id"] == 3
    assert (await audit.verify()).ok


async def test_an_append_rolled_back_leaves_the_chain_intact() -> None:
    before = await AuditEntry.count()
    try:
        async with transaction():
            await audit.append([audit.entry("test.rolled_back", "thing", i) for i in range(3)])
            raise RuntimeError("the change failed")
    except RuntimeError:
        pass
    assert await AuditEntry.count() == before
    await audit.record("test.after_rollback", "thing")
    assert (await audit.verify()).ok


async def test_appending_nothing_writes_nothing() -> None:
    assert await audit.append([]) == []


async def test_entries_with_any_text_link_the_same_in_the_database_and_in_python() -> None:
    """On PostgreSQL the chain is linked by the ``audit_append`` function and checked by
    ``verify`` in Python: both must hash the same bytes, whatever the text."""
    texts = ["王芳 申请贷款", "emoji 🙂 and \\n newline\nreal", "quotes \"' and \\\\ backslashes", ""]
    async with transaction():
        ids = await audit.append(
            [audit.entry("test.text", "thing", i, detail={"note": t}, after={"t": t}) for i, t in enumerate(texts)]
        )
    rows = await AuditEntry.select().where(AuditEntry.id.is_in(ids)).order_by(AuditEntry.id)
    for row in rows:
        assert row["entry_hash"] == audit.entry_hash(row["prev_hash"], audit._hashed_fields(row))
    assert (await audit.verify()).ok


async def test_the_database_function_takes_the_chains_lock(backend: str) -> None:
    if backend != "postgres":
        pytest.skip("PostgreSQL only: SQLite appends from Python under its single write lock")
    from app.db import pg_connection

    async with pg_connection() as connection:
        source = await connection.fetchval("SELECT prosrc FROM pg_proc WHERE proname = 'audit_append'")
    assert f"pg_advisory_xact_lock({audit._LOCK_KEY})" in source
