"""The tax authority's data-sharing gateway: its interface and a sandbox.

The gateway is called only under a recorded consent covering the taxpayer,
the ``tax_record`` scope and the moment of the call; without one the call is
refused before any network traffic. Its failures come in two kinds the
caller must keep apart: ``TaxpayerNotFound`` is an answer (the application
can be declined for it), while ``ProviderUnavailable`` and
``ProviderTimeout`` are not (the application waits in "data pending" and is
retried). ``fetch_or_pending`` encodes that rule once for the service.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Final, Protocol

import numpy as np

from credit.engine import synth
from credit.engine.errors import ConsentMissing, ProviderError, ProviderTimeout, ProviderUnavailable, TaxpayerNotFound
from credit.engine.records import (
    GRADES,
    INDUSTRIES,
    KINDS,
    MONTHS,
    SCOPE_TAX_RECORD,
    MonthlyFiling,
    TaxConsent,
    TaxRecord,
    period_of,
    validate_taxpayer_id,
)


class TaxDataProvider(Protocol):
    """A source of tax records: the real gateway, the sandbox, a test fake."""

    async def fetch(self, taxpayer_id: str, consent: TaxConsent) -> TaxRecord:
        """The taxpayer's record; raises ``ConsentMissing``, ``TaxpayerNotFound``,
        ``ProviderUnavailable`` or ``ProviderTimeout``."""
        ...


def require_consent(taxpayer_id: str, consent: TaxConsent, now: datetime | None = None) -> None:
    """Refuse a fetch that no live consent covers (called by every provider)."""
    if not consent.covers(taxpayer_id, SCOPE_TAX_RECORD, now or datetime.now(UTC)):
        raise ConsentMissing(f"no live consent of scope {SCOPE_TAX_RECORD!r} covers taxpayer {taxpayer_id}")


@dataclass(frozen=True, slots=True)
class DataPending:
    """The gateway gave no answer; retry after ``retry_after``."""

    reason: str
    retry_after: timedelta
    attempts: int


async def fetch_or_pending(
    provider: TaxDataProvider,
    taxpayer_id: str,
    consent: TaxConsent,
    *,
    attempts: int = 2,
    call_seconds: float = 2.0,
    backoff: float = 0.2,
) -> TaxRecord | DataPending:
    """A record, or ``DataPending`` when the gateway fails transiently.

    Retries a few times within the request (with a time limit per call), then
    hands back ``DataPending`` so the application is parked and retried by a
    job: an outage must never turn into a decline. ``TaxpayerNotFound`` and
    ``ConsentMissing`` propagate, as they are answers, not outages.
    """
    last: ProviderError = ProviderUnavailable("no attempt made")
    for attempt in range(1, attempts + 1):
        try:
            return await asyncio.wait_for(provider.fetch(taxpayer_id, consent), call_seconds)
        except TimeoutError:
            last = ProviderTimeout(f"the tax gateway did not answer within {call_seconds} s")
        except ProviderError as exc:
            last = exc
        if attempt < attempts:
            await asyncio.sleep(backoff * attempt)
    return DataPending(reason=last.code, retry_after=timedelta(minutes=5), attempts=attempts)


_CITIES: Final = ("杭州", "宁波", "苏州", "无锡", "成都", "长沙", "合肥", "佛山", "厦门", "青岛")
_WORDS: Final = ("华信", "恒达", "瑞丰", "鑫源", "宏图", "锦程", "永兴", "博远", "嘉禾", "启明", "创联", "安泰")
_TRADE: Final = ("制造", "商贸", "建设", "物流", "餐饮", "信息技术", "农业", "企业管理咨询")
_SURNAMES: Final = ("王", "李", "张", "刘", "陈", "杨", "黄", "赵", "周", "吴")
_USCC_ALPHABET: Final = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_ORG_WEIGHTS: Final = (3, 7, 9, 10, 5, 8, 4, 2)


def _seed(taxpayer_id: str) -> int:
    return int.from_bytes(hashlib.sha256(taxpayer_id.encode()).digest()[:8], "big")


def sandbox_uscc(n: int) -> str:
    """A well-formed unified social credit code (Hangzhou, enterprise) for
    test and demo data; different ``n`` give different codes."""
    from stdnum.cn import uscc

    org = f"{(n * 7919 + 10_000_000) % 100_000_000:08d}"
    check = 11 - sum(int(d) * w for d, w in zip(org, _ORG_WEIGHTS, strict=True)) % 11
    body = f"91330106{org}{'X' if check == 10 else '0' if check == 11 else check}"
    return body + str(uscc.calc_check_digit(body))


def sandbox_ric(n: int) -> str:
    """A well-formed resident identity number (Hangzhou Xihu, born 1985-2004) for a sole proprietor."""
    from stdnum.cn import ric

    born = date(1985, 1, 1) + timedelta(days=(n * 37) % 7300)
    body = f"330106{born:%Y%m%d}{n % 1000:03d}"
    return body + str(ric.calc_check_digit(body + "0"))


class SandboxProvider:
    """Deterministic, realistic records for development and tests.

    The same taxpayer id always yields the same record for the same ``as_of``
    (the id seeds the generator), drawn from the model the history generator
    uses. The kind follows the id: resident ID numbers are sole proprietors.
    ``unavailable``, ``slow`` and ``unknown`` make given ids fail the way the
    real gateway can, so callers' error paths run against a real provider.
    """

    def __init__(
        self,
        as_of: date | None = None,
        *,
        unknown: frozenset[str] = frozenset(),
        unavailable: frozenset[str] = frozenset(),
        slow: frozenset[str] = frozenset(),
        cache_size: int = 4096,
    ) -> None:
        self.as_of = as_of or datetime.now(UTC).date()
        self.unknown, self.unavailable, self.slow = unknown, unavailable, slow
        self._cache: OrderedDict[str, TaxRecord] = OrderedDict()
        self._cache_size = cache_size

    async def fetch(self, taxpayer_id: str, consent: TaxConsent) -> TaxRecord:
        require_consent(taxpayer_id, consent)
        if taxpayer_id in self.unavailable:
            raise ProviderUnavailable("sandbox: gateway unavailable for this taxpayer")
        if taxpayer_id in self.slow:
            await asyncio.sleep(3600)
            raise ProviderTimeout("sandbox: no answer")  # pragma: no cover - callers time out first
        if taxpayer_id in self.unknown:
            raise TaxpayerNotFound(f"sandbox: no taxpayer {taxpayer_id}")
        try:
            return self.record(taxpayer_id)
        except ValueError:
            raise TaxpayerNotFound(f"sandbox: {taxpayer_id} is neither a USCC nor a resident ID") from None

    def record(self, taxpayer_id: str) -> TaxRecord:
        """The sandbox record of ``taxpayer_id`` (no consent check: for seeding demo data)."""
        if (cached := self._cache.get(taxpayer_id)) is not None:
            self._cache.move_to_end(taxpayer_id)
            return cached
        record = self._generate(taxpayer_id)
        self._cache[taxpayer_id] = record
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return record

    def _generate(self, taxpayer_id: str) -> TaxRecord:
        try:
            kind = "enterprise"
            taxpayer_id = validate_taxpayer_id(taxpayer_id, kind)
        except ValueError:
            kind = "sole_proprietor"
            taxpayer_id = validate_taxpayer_id(taxpayer_id, kind)
        rng = np.random.default_rng(_seed(taxpayer_id))
        as_of = np.array([np.datetime64(self.as_of, "D")])
        batch = synth.generate(rng, as_of, kind=np.array([KINDS.index(kind)], dtype=np.int64))
        months, latest = int(batch.months[0]), int(batch.latest_index[0])
        filings = [
            MonthlyFiling(
                period=period_of(latest - m),
                vat_sales_fen=int(batch.sales[0, m]),
                vat_paid_fen=int(batch.vat_paid[0, m]),
                income_tax_fen=int(batch.income_tax[0, m]),
                filed_on_time=bool(batch.on_time[0, m]),
            )
            for m in reversed(range(min(months, MONTHS)))
        ]
        grades = {
            str(int(batch.grade_year[0]) - j): GRADES[int(code)] for j, code in enumerate(batch.grades[0]) if code >= 0
        }
        industry = int(batch.industry[0])
        return TaxRecord(
            taxpayer_id=taxpayer_id,
            kind="sole_proprietor" if kind == "sole_proprietor" else "enterprise",
            name=_name(rng, kind, industry),
            registered_on=batch.registered_on[0].item(),
            industry=INDUSTRIES[industry],  # type: ignore[arg-type]
            status="abnormal" if batch.abnormal[0] else "normal",
            grades=grades,  # type: ignore[arg-type]
            filings=filings,
            arrears_fen=int(batch.arrears[0]),
            penalties_fen=int(batch.penalties[0]),
            as_of=self.as_of,
        )


def _name(rng: np.random.Generator, kind: str, industry: int) -> str:
    city, word = _CITIES[rng.integers(len(_CITIES))], _WORDS[rng.integers(len(_WORDS))]
    if kind == "sole_proprietor":
        return f"{city}市{_SURNAMES[rng.integers(len(_SURNAMES))]}记{_TRADE[industry]}经营部"
    return f"{city}{word}{_TRADE[industry]}有限公司"
