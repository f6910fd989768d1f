"""Demo data of claims/ for ``branchless seed``: the demo customer's medical policy."""

from __future__ import annotations

from datetime import UTC, date, datetime

from claims.tables import Policy


async def seed_demo(customer_id: int | None) -> None:
    """Give a newly created demo customer a policy (``None``: the customer existed already)."""
    if customer_id is None:
        return
    now = datetime.now(UTC)
    await Policy.insert(
        Policy(
            policy_number="PH-2026-000001",
            customer=customer_id,
            product="Medical insurance (百万医疗)",
            coverage_start=date(now.year, 1, 1),
            coverage_end=date(now.year, 12, 31),
            sum_insured_fen=1_000_000_00 * 2,
            deductible_fen=10_000_00,
            created_at=now,
        )
    )
