"""Sample documents and evidence for development, demos, tests and benchmarks.

Not used in production paths. The repayment schedule here is a plain equal-principal table to fill
the template; real schedules come from the loans domain.
"""
# ruff: noqa: RUF001  # Chinese text uses full-width punctuation on purpose

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from kyc.signing.documents import ClaimDocument, ClaimForm, LoanContract, ScheduleRow, TaxDataConsent
from kyc.signing.models import SignerEvidence

_CENT = Decimal("0.01")
SAMPLE_USCC = "91310115MA1K3XKX42"
SAMPLE_RIC = "11010519491231002X"


def _add_months(day: dt.date, months: int) -> dt.date:
    month = day.month - 1 + months
    year, month = day.year + month // 12, month % 12 + 1
    return dt.date(year, month, min(day.day, 28))


def equal_principal_schedule(amount: Decimal, annual_rate: Decimal, months: int, start: dt.date) -> list[ScheduleRow]:
    """Equal principal per month, interest on the outstanding balance; the last row absorbs rounding."""
    per = (amount / months).quantize(_CENT)
    balance = amount
    rows = []
    for period in range(1, months + 1):
        principal = per if period < months else balance
        interest = (balance * annual_rate / 12).quantize(_CENT)
        balance -= principal
        rows.append(ScheduleRow(period, _add_months(start, period), principal, interest, balance))
    return rows


def sample_consent() -> TaxDataConsent:
    return TaxDataConsent(
        consent_id="TC-2026-000123",
        taxpayer_name="上海浦江小微科技有限公司",
        taxpayer_id=SAMPLE_USCC,
        grantee="Branchless 普惠金融服务平台",
        purpose="小微企业信用贷款审批及贷后管理",
        scope=["增值税纳税申报数据", "企业所得税纳税申报数据", "纳税信用等级", "欠税及违法违章记录"],
        valid_from=dt.date(2026, 11, 27),
        expires_on=dt.date(2027, 11, 26),
    )


def sample_loan_contract() -> LoanContract:
    amount, rate, start = Decimal("150000.00"), Decimal("0.0720"), dt.date(2026, 12, 1)
    return LoanContract(
        contract_no="LC-2026-004567",
        borrower_name="张晓明",
        borrower_id=SAMPLE_RIC,
        lender="Branchless 普惠金融服务平台",
        amount=amount,
        annual_rate=rate,
        term_months=24,
        repayment_method="等额本金 Equal principal",
        start_date=start,
        schedule=equal_principal_schedule(amount, rate, 24, start),
    )


def sample_claim_form() -> ClaimForm:
    return ClaimForm(
        claim_no="CL-2026-007890",
        policy_no="PA-2025-99887766",
        insurer="平安健康保险股份有限公司",
        claimant_name="陈小燕",
        claimant_id=SAMPLE_RIC,
        claim_type="住院医疗 Inpatient medical",
        incident_date=dt.date(2026, 10, 18),
        amount_claimed=Decimal("12850.60"),
        description="因急性阑尾炎于 2026-10-18 入院，行腹腔镜阑尾切除术，住院 5 天后出院。",
        documents=[
            ClaimDocument("出院小结 Discharge summary", "medical record"),
            ClaimDocument("住院费用发票 Hospital invoice", "invoice"),
            ClaimDocument("费用明细清单 Itemised bill", "invoice"),
        ],
    )


def customer_evidence(shown_sha256: str | None = None, *, now: dt.datetime | None = None) -> SignerEvidence:
    checked = (now or dt.datetime.now(dt.UTC)) - dt.timedelta(seconds=20)
    return SignerEvidence(
        role="customer",
        ip_address="203.0.113.25",
        user_agent="Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
        session_ref="s-7f3a9c",
        kyc_case_id="KYC-2026-001122",
        face_distance=0.3124,
        face_threshold=0.41,
        face_checked_at=checked,
        shown_sha256=shown_sha256,
    )


def staff_evidence(role: str = "account_manager", shown_sha256: str | None = None) -> SignerEvidence:
    return SignerEvidence(
        role="insurer" if role == "insurer" else "account_manager",
        ip_address="10.20.30.40",
        user_agent="Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/131.0 Safari/537.36",
        session_ref="s-staff-01",
        shown_sha256=shown_sha256,
    )
