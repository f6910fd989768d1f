"""Proactive relief: borrowers whose sales fell against the same months a year before."""

from __future__ import annotations

from datetime import date

import msgspec
import pytest

from credit.engine.provider import SandboxProvider, sandbox_uscc
from credit.engine.records import MonthlyFiling, TaxRecord, period_of, records_frame
from credit.engine.relief import relief_candidates


def record(n: int, recent: int, year_before: int, months: int = 24) -> TaxRecord:
    base = SandboxProvider(date(2025, 6, 15)).record(sandbox_uscc(n))
    latest = 2025 * 12 + 4
    filings = [
        MonthlyFiling(
            period=period_of(latest - back),
            vat_sales_fen=recent if back < 3 else year_before if 12 <= back < 15 else 1_000,
            vat_paid_fen=0,
            income_tax_fen=0,
            filed_on_time=True,
        )
        for back in reversed(range(months))
    ]
    return msgspec.structs.replace(base, filings=filings)


def test_flags_falls_beyond_the_share_worst_first() -> None:
    book = [
        record(1, 500, 1_000),
        record(2, 690, 1_000),
        record(3, 710, 1_000),
        record(4, 100, 0),
        record(5, 50, 1_000, 12),
    ]
    flagged = relief_candidates(records_frame(book), drop_share=0.3)
    assert flagged["taxpayer_id"].to_list() == [book[0].taxpayer_id, book[1].taxpayer_id]
    assert flagged["sales_change"].to_list() == pytest.approx([-0.5, -0.31])
    assert flagged["recent_sales_fen"].to_list() == [1_500, 2_070]
    assert flagged["year_before_sales_fen"].to_list() == [3_000, 3_000]


def test_share_and_window_are_configurable() -> None:
    book = [record(1, 500, 1_000)]
    assert relief_candidates(records_frame(book), drop_share=0.6).height == 0
    assert relief_candidates(records_frame(book), drop_share=0.2, months=1).height == 1
    with pytest.raises(ValueError, match="months"):
        relief_candidates(records_frame(book), months=13)
    with pytest.raises(ValueError, match="drop_share"):
        relief_candidates(records_frame(book), drop_share=0.0)
