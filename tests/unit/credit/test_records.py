"""Tax records, consent, the gateway interface and its sandbox."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta

import msgspec
import pytest

from credit.engine.errors import ConsentMissing, ProviderUnavailable, TaxpayerNotFound
from credit.engine.features import features_of
from credit.engine.provider import (
    DataPending,
    SandboxProvider,
    TaxDataProvider,
    fetch_or_pending,
    sandbox_ric,
    sandbox_uscc,
)
from credit.engine.records import MonthlyFiling, TaxConsent, TaxRecord, record_from_row, record_row

AS_OF = date(2025, 6, 15)
NOW = datetime(2025, 6, 15, 9, 30, tzinfo=UTC)


def consent(taxpayer_id: str, **changes: object) -> TaxConsent:
    values: dict[str, object] = {
        "consent_id": "c-1",
        "taxpayer_id": taxpayer_id,
        "scopes": frozenset({"tax_record"}),
        "granted_at": datetime.now(UTC) - timedelta(days=1),
        "expires_at": datetime.now(UTC) + timedelta(days=90),
    }
    return TaxConsent(**{**values, **changes})  # type: ignore[arg-type]


def test_consent_covers_only_its_taxpayer_scope_and_time() -> None:
    c = consent("A", granted_at=NOW - timedelta(days=1), expires_at=NOW + timedelta(days=1))
    assert c.covers("A", "tax_record", NOW)
    assert not c.covers("B", "tax_record", NOW)
    assert not c.covers("A", "invoices", NOW)
    assert not c.covers("A", "tax_record", NOW + timedelta(days=2))
    revoked = msgspec.structs.replace(c, revoked_at=NOW - timedelta(hours=1))
    assert not revoked.covers("A", "tax_record", NOW)


def test_consent_stored_by_day_covers_whole_days_in_beijing_time() -> None:
    c = TaxConsent.from_dates("TC-1", "A", date(2025, 6, 1), date(2025, 6, 30))
    assert c.covers("A", "tax_record", datetime(2025, 5, 31, 16, 0, tzinfo=UTC))  # 00:00 on 1 June in Beijing
    assert not c.covers("A", "tax_record", datetime(2025, 5, 31, 15, 59, tzinfo=UTC))
    assert c.covers("A", "tax_record", datetime(2025, 6, 30, 15, 59, tzinfo=UTC))  # 23:59 on 30 June in Beijing
    assert not c.covers("A", "tax_record", datetime(2025, 6, 30, 16, 0, tzinfo=UTC))


def test_record_decodes_from_the_wire_and_validates_ids_by_kind() -> None:
    record = SandboxProvider(AS_OF).record(sandbox_uscc(7))
    wire = msgspec.json.encode(record)
    assert b'"taxpayerId"' in wire
    assert b'"penaltiesFen"' in wire
    assert msgspec.json.decode(wire, type=TaxRecord) == record
    with pytest.raises(msgspec.ValidationError, match="unified social credit code"):
        msgspec.json.decode(wire.replace(record.taxpayer_id.encode(), sandbox_ric(3).encode()), type=TaxRecord)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"registered_on": date(2026, 1, 1)}, "registered_on"),
        ({"grades": {"2026": "A"}}, "grades"),
        ({"as_of": date(2025, 5, 20)}, "latest period"),
    ],
)
def test_record_rules_name_the_field(change: dict[str, object], message: str) -> None:
    record = SandboxProvider(AS_OF).record(sandbox_uscc(8))
    with pytest.raises(ValueError, match=message):
        TaxRecord(**{**msgspec.structs.asdict(record), **change})


def test_filings_must_be_consecutive() -> None:
    record = SandboxProvider(AS_OF).record(sandbox_uscc(9))
    filings = [*record.filings[:5], *record.filings[6:]]
    with pytest.raises(ValueError, match="consecutive"):
        TaxRecord(**{**msgspec.structs.asdict(record), "filings": filings})


def test_wide_row_round_trip() -> None:
    provider = SandboxProvider(AS_OF)
    for record in [provider.record(sandbox_uscc(n)) for n in range(20)] + [provider.record(sandbox_ric(1))]:
        assert record_from_row(record_row(record)) == record


def test_sandbox_is_deterministic_per_taxpayer_and_varied_across_them() -> None:
    a, b = SandboxProvider(AS_OF), SandboxProvider(AS_OF)
    ids = [sandbox_uscc(n) for n in range(300)]
    records = [a.record(i) for i in ids]
    assert records == [b.record(i) for i in ids]
    assert len({r.industry for r in records}) == 8
    assert {r.grades[max(r.grades)] for r in records if r.grades} >= {"A", "B", "M", "C"}
    assert any(r.arrears_fen > 0 for r in records)
    assert any(not f.filed_on_time for r in records for f in r.filings)
    assert sum(r.status == "abnormal" for r in records) < 20  # rare
    assert all(r.kind == "enterprise" for r in records)
    assert SandboxProvider(AS_OF).record(sandbox_ric(5)).kind == "sole_proprietor"


def test_sandbox_income_tax_is_quarterly() -> None:
    provider = SandboxProvider(AS_OF)
    months = {
        int(f.period[5:]) for n in range(50) for f in provider.record(sandbox_uscc(n)).filings if f.income_tax_fen > 0
    }
    assert months <= {1, 4, 7, 10}


def test_sandbox_features_are_plausible() -> None:
    provider = SandboxProvider(AS_OF)
    features = [features_of(provider.record(sandbox_uscc(n))) for n in range(200)]
    median_tax = sorted(f.tax_paid_12m_fen for f in features)[100]
    assert 1_000_000 < median_tax < 100_000_000  # between 10 thousand and 1 million yuan a year
    assert sum(f.on_time_ratio_24m == 1.0 for f in features) > 100


async def test_provider_refuses_without_consent() -> None:
    provider: TaxDataProvider = SandboxProvider(AS_OF)
    taxpayer = sandbox_uscc(1)
    with pytest.raises(ConsentMissing):
        await provider.fetch(taxpayer, consent(sandbox_uscc(2)))
    with pytest.raises(ConsentMissing):
        await provider.fetch(taxpayer, consent(taxpayer, expires_at=datetime.now(UTC) - timedelta(seconds=1)))
    record = await provider.fetch(taxpayer, consent(taxpayer))
    assert record.taxpayer_id == taxpayer


async def test_outages_become_data_pending_but_unknown_taxpayers_are_an_answer() -> None:
    down, slow, unknown = sandbox_uscc(11), sandbox_uscc(12), sandbox_uscc(13)
    provider = SandboxProvider(
        AS_OF, unavailable=frozenset({down}), slow=frozenset({slow}), unknown=frozenset({unknown})
    )
    pending = await fetch_or_pending(provider, down, consent(down), attempts=2, backoff=0.0)
    assert pending == DataPending(reason=ProviderUnavailable.code, retry_after=timedelta(minutes=5), attempts=2)
    pending = await fetch_or_pending(provider, slow, consent(slow), attempts=1, call_seconds=0.05)
    assert isinstance(pending, DataPending)
    assert pending.reason == "tax_data_timeout"
    with pytest.raises(TaxpayerNotFound):
        await fetch_or_pending(provider, unknown, consent(unknown))
    record = await fetch_or_pending(provider, sandbox_uscc(14), consent(sandbox_uscc(14)))
    assert isinstance(record, TaxRecord)
    invalid = sandbox_uscc(15)[:-1] + "0"
    with pytest.raises(TaxpayerNotFound, match="neither"):
        await provider.fetch(invalid, consent(invalid))


async def test_a_flaky_gateway_is_retried_within_the_request() -> None:
    class Flaky:
        def __init__(self) -> None:
            self.calls = 0
            self.inner = SandboxProvider(AS_OF)

        async def fetch(self, taxpayer_id: str, c: TaxConsent) -> TaxRecord:
            self.calls += 1
            if self.calls == 1:
                raise ProviderUnavailable("blip")
            await asyncio.sleep(0)
            return await self.inner.fetch(taxpayer_id, c)

    flaky = Flaky()
    result = await fetch_or_pending(flaky, sandbox_uscc(15), consent(sandbox_uscc(15)), attempts=3, backoff=0.0)
    assert isinstance(result, TaxRecord)
    assert flaky.calls == 2


def test_monthly_filing_money_is_bounded() -> None:
    wire = b'{"period":"2025-01","vatSalesFen":1000000000000001,"vatPaidFen":0,"incomeTaxFen":0,"filedOnTime":true}'
    with pytest.raises(msgspec.ValidationError, match="vatSalesFen"):
        msgspec.json.decode(wire, type=MonthlyFiling)
