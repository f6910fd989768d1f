"""Tables of claims/: insurance policies held by customers."""

from __future__ import annotations

from piccolo.columns import BigInt, Date, ForeignKey, Serial, Timestamptz, Varchar
from piccolo.table import Table

from app.tables import Customer


class Policy(Table, tablename="policy"):
    """An insurance policy; money in integer fen with its currency."""

    id = Serial(primary_key=True)

    policy_number = Varchar(length=32, unique=True, index=True)
    customer = ForeignKey(references=Customer, index=True)
    product = Varchar(length=64)
    coverage_start = Date()
    coverage_end = Date()
    sum_insured_fen = BigInt()
    deductible_fen = BigInt(default=0)
    currency = Varchar(length=3, default="CNY")
    status = Varchar(length=16, default="active")
    created_at = Timestamptz()
