"""Group commit: concurrent items share a write, each caller gets its own outcome."""

from __future__ import annotations

import asyncio

import pytest

from credit.group_commit import GroupCommit


class Store:
    """A fake writer: records its batches, fails the items or batches it is told to."""

    def __init__(self, *, bad_items: frozenset[int] = frozenset(), poison: frozenset[int] = frozenset()) -> None:
        self.batches: list[list[int]] = []
        self.committed: list[int] = []
        self.bad_items, self.poison = bad_items, poison

    async def write(self, items: list[int]) -> list[int | Exception]:
        self.batches.append(list(items))
        await asyncio.sleep(0.001)  # the transaction's round trips
        if self.poison & set(items):  # e.g. a constraint: the whole transaction rolls back
            raise ValueError(f"poisoned batch {items}")
        results: list[int | Exception] = []
        for i in items:
            if i in self.bad_items:
                results.append(LookupError(f"item {i}"))
            else:
                results.append(i * 10)
        self.committed += [i for i in items if i not in self.bad_items]
        return results


async def test_concurrent_items_share_batches_and_each_gets_its_result() -> None:
    store = Store()
    writer = GroupCommit(store.write, max_batch=16)
    results = await asyncio.gather(*(writer.submit(i) for i in range(50)))
    assert results == [i * 10 for i in range(50)]
    assert sorted(store.committed) == list(range(50))
    assert len(store.batches) < 10  # not one write per item
    assert max(len(b) for b in store.batches) <= 16


async def test_an_idle_writer_writes_a_lone_item_at_once() -> None:
    store = Store()
    writer = GroupCommit(store.write, max_batch=16)
    assert await writer.submit(1) == 10
    assert await writer.submit(2) == 20
    assert store.batches == [[1], [2]]


async def test_an_items_own_failure_reaches_its_caller_only() -> None:
    store = Store(bad_items=frozenset({3}))
    writer = GroupCommit(store.write, max_batch=16)
    results = await asyncio.gather(*(writer.submit(i) for i in range(6)), return_exceptions=True)
    assert isinstance(results[3], LookupError)
    assert [r for k, r in enumerate(results) if k != 3] == [0, 10, 20, 40, 50]


async def test_a_failed_batch_is_retried_item_by_item() -> None:
    store = Store(poison=frozenset({4}))
    writer = GroupCommit(store.write, max_batch=16)
    results = await asyncio.gather(*(writer.submit(i) for i in range(8)), return_exceptions=True)
    assert isinstance(results[4], ValueError)
    assert [r for k, r in enumerate(results) if k != 4] == [0, 10, 20, 30, 50, 60, 70]
    assert sorted(store.committed) == [0, 1, 2, 3, 5, 6, 7]
    assert [4] in store.batches  # the culprit alone, and only its caller saw the error


async def test_a_caller_gone_before_its_batch_started_is_not_written() -> None:
    store = Store()
    writer = GroupCommit(store.write, max_batch=16)
    first = asyncio.create_task(writer.submit(1))
    await asyncio.sleep(0)  # queued, the writer not started yet
    gone = asyncio.create_task(writer.submit(2))
    await asyncio.sleep(0)
    gone.cancel()
    assert await first == 10
    with pytest.raises(asyncio.CancelledError):
        await gone
    assert 2 not in store.committed


async def test_callers_waiting_when_the_writer_is_cancelled_get_an_error() -> None:
    started = asyncio.Event()

    async def hang(items: list[int]) -> list[int | Exception]:
        started.set()
        await asyncio.sleep(3600)
        return [0 for _ in items]

    writer: GroupCommit[int, int] = GroupCommit(hang, max_batch=16)
    waiting = [asyncio.create_task(writer.submit(i)) for i in range(3)]
    await started.wait()
    assert writer._task is not None
    writer._task.cancel()
    for task in waiting:
        with pytest.raises(RuntimeError, match="group commit stopped"):
            await task
