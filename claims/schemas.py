"""Structs of claims/ that cross the HTTP boundary."""

from __future__ import annotations

from datetime import date

from app.schemas import Base


class PolicyOut(Base):
    id: int
    policy_number: str
    customer_id: int
    product: str
    coverage_start: date
    coverage_end: date
    sum_insured: str
    """Decimal amount as a string, in ``currency``."""
    deductible: str
    currency: str
    status: str
