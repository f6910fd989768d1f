"""The audit log's hash chain catches edits, deletions and reordering."""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator
from typing import Any

import pytest

from app import audit
from app.tables import AuditEntry
from tests.helpers import make_customer


@pytest.fixture
async def chain() -> AsyncIterator[list[dict[str, Any]]]:
    """At least three fresh entries at the chain's end; the chain is restored
    afterwards (tampering tests edit rows the real way, with SQL)."""
    for i in range(3):
        await audit.record("test.event", "thing", i, after={"i": i})
    rows = await AuditEntry.select().order_by(AuditEntry.id, ascending=False).limit(3)
    originals = list(reversed(rows))
    yield originals
    for row in originals:
        if await AuditEntry.exists().where(AuditEntry.id == row["id"]):
            await AuditEntry.update(
                {
                    AuditEntry.entity_id: row["entity_id"],
                    AuditEntry.prev_hash: row["prev_hash"],
                    AuditEntry.entry_hash: row["entry_hash"],
                    AuditEntry.action: row["action"],
                }
            ).where(AuditEntry.id == row["id"])
        else:
            await AuditEntry.insert(AuditEntry(**row))
    assert (await audit.verify()).ok


async def test_intact_chain_verifies(chain: list[dict[str, Any]]) -> None:
    report = await audit.verify()
    assert report.ok
    assert report.entries >= 3


async def test_edited_row_is_named(chain: list[dict[str, Any]]) -> None:
    target = chain[1]
    await AuditEntry.update({AuditEntry.entity_id: "999"}).where(AuditEntry.id == target["id"])
    report = await audit.verify()
    assert not report.ok
    assert report.broken_id == target["id"]
    assert "edited" in report.reason


async def test_deleted_row_breaks_the_next_link(chain: list[dict[str, Any]]) -> None:
    await AuditEntry.delete().where(AuditEntry.id == chain[1]["id"])
    report = await audit.verify()
    assert not report.ok
    assert report.broken_id == chain[2]["id"]
    assert "deleted" in report.reason


async def test_reordered_rows_are_caught(chain: list[dict[str, Any]]) -> None:
    a, b = chain[0], chain[1]
    fields = [
        "at",
        "action",
        "entity",
        "entity_id",
        "before_digest",
        "after_digest",
        "detail",
        "prev_hash",
        "entry_hash",
    ]
    swap_a = {getattr(AuditEntry, f): b[f] for f in fields}
    swap_b = {getattr(AuditEntry, f): a[f] for f in fields}
    # entry_hash is unique: park one value first
    await AuditEntry.update({AuditEntry.entry_hash: "x" * 64}).where(AuditEntry.id == a["id"])
    await AuditEntry.update(swap_b).where(AuditEntry.id == b["id"])
    await AuditEntry.update(swap_a).where(AuditEntry.id == a["id"])
    report = await audit.verify()
    assert not report.ok
    assert report.broken_id == a["id"]
    for row in (a, b):
        await AuditEntry.update({getattr(AuditEntry, f): row[f] for f in fields if f != "entry_hash"}).where(
            AuditEntry.id == row["id"]
        )
    await AuditEntry.update({AuditEntry.entry_hash: "y" * 64}).where(AuditEntry.id == b["id"])
    await AuditEntry.update({AuditEntry.entry_hash: a["entry_hash"]}).where(AuditEntry.id == a["id"])
    await AuditEntry.update({AuditEntry.entry_hash: b["entry_hash"]}).where(AuditEntry.id == b["id"])


async def test_cli_audit_verify_exits_nonzero_naming_the_entry(
    chain: list[dict[str, Any]], cli_env: dict[str, str]
) -> None:
    ok = subprocess.run(
        [".venv/bin/branchless", "audit", "verify"], env=cli_env, capture_output=True, text=True, check=False
    )
    assert ok.returncode == 0, ok.stderr
    await AuditEntry.update({AuditEntry.action: "tampered"}).where(AuditEntry.id == chain[2]["id"])
    bad = subprocess.run(
        [".venv/bin/branchless", "audit", "verify"], env=cli_env, capture_output=True, text=True, check=False
    )
    assert bad.returncode == 1
    assert f"entry {chain[2]['id']}" in bad.stderr


async def test_state_change_and_its_entry_commit_together(client: Any) -> None:
    """A sign-up refused half-way leaves neither the account nor an audit entry."""
    me = await make_customer()
    before = await AuditEntry.count()
    r = await client.post(
        "/api/customers",
        json={"email": me.email, "password": "long enough pw", "fullName": "X", "phone": "13912345678"},
    )
    assert r.status_code == 409
    assert await AuditEntry.count() == before


async def test_entries_hold_digests_not_personal_data() -> None:
    me = await make_customer()
    rows = await AuditEntry.select().where(AuditEntry.entity_id == str(me.customer_id))
    assert rows
    text = str(rows)
    assert "@example.cn" not in text
