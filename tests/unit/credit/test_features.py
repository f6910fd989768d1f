"""One feature definition: the live twin agrees with the polars expressions."""

from __future__ import annotations

from datetime import date

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from credit.engine.features import Features, features_frame, features_of
from credit.engine.provider import sandbox_uscc
from credit.engine.records import MonthlyFiling, TaxRecord, period_of, records_frame

from .strategies import records


def _record(filings: list[tuple[int, int, int, bool]], **overrides: object) -> TaxRecord:
    """Filings given latest last, ending 2025-05 for a record of 2025-06-15."""
    start = 2025 * 12 + 4 - len(filings) + 1
    values: dict[str, object] = {
        "taxpayer_id": sandbox_uscc(1),
        "kind": "enterprise",
        "name": "杭州测试有限公司",
        "registered_on": date(2020, 6, 15),
        "industry": "manufacturing",
        "status": "normal",
        "grades": {"2023": "B", "2024": "A"},
        "filings": [
            MonthlyFiling(
                period=period_of(start + i), vat_sales_fen=s, vat_paid_fen=v, income_tax_fen=t, filed_on_time=ok
            )
            for i, (s, v, t, ok) in enumerate(filings)
        ],
        "arrears_fen": 0,
        "penalties_fen": 0,
        "as_of": date(2025, 6, 15),
    }
    return TaxRecord(**{**values, **overrides})  # type: ignore[arg-type]


def test_features_of_a_hand_made_record() -> None:
    # 24 months: the older 12 sell 100 each, the recent 12 sell 150; two zero months, three late filings
    older = [(100, 10, 0, True)] * 12
    recent = [(150, 20, 5, True)] * 9 + [(0, 0, 0, False), (-30, 0, 0, False), (150, 20, 5, False)]
    record = _record(older + recent, arrears_fen=7, penalties_fen=9)
    f = features_of(record)
    assert f.grade == "A"  # 2024 is the latest graded year
    assert f.sales_12m_fen == 150 * 10 - 30
    assert f.tax_paid_12m_fen == 10 * (20 + 5)
    assert f.sales_yoy_change == (1470 - 1200) / 1200
    assert f.zero_months_24m == 2
    assert f.on_time_ratio_24m == 21 / 24
    assert (f.arrears_fen, f.penalties_12m_fen) == (7, 9)
    assert f.years_registered == 1826 * (1 / 365.25)  # five years, one of them leap


def test_young_business_without_history_has_defined_values() -> None:
    f = features_of(_record([], grades={}, registered_on=date(2025, 6, 1)))
    assert (f.grade, f.sales_12m_fen, f.sales_yoy_change, f.on_time_ratio_24m, f.zero_months_24m) == (
        "M",
        0,
        0.0,
        0.0,
        0,
    )


def test_no_prior_year_sales_means_no_change_rather_than_infinity() -> None:
    f = features_of(_record([(0, 0, 0, True)] * 12 + [(100, 1, 0, True)] * 12))
    assert f.sales_yoy_change == 0.0


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(records(), min_size=1, max_size=8))
def test_live_twin_equals_vectorised_definition(batch: list[TaxRecord]) -> None:
    frame = features_frame(records_frame(batch))
    for i, record in enumerate(batch):
        vectorised = Features(**frame.row(i, named=True))
        live = features_of(record)
        # bit for bit, floats included: msgspec encodes floats exactly (shortest repr)
        assert msgspec.json.encode(live) == msgspec.json.encode(vectorised)
