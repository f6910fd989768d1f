"""Document templates: Chinese text embedded and extractable, inputs checked, output deterministic."""

from __future__ import annotations

import io
from decimal import Decimal
from pathlib import Path

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pypdf import PdfReader

from kyc.signing import documents, errors, fonts, money, samples

FIXTURE_PDF = Path(__file__).resolve().parents[4] / "shared" / "fixtures" / "claims" / "medical_receipt_example.pdf"


def test_consent_text_is_extractable() -> None:
    text = documents.extract_text(documents.render_consent(samples.sample_consent()))
    for expected in (
        "涉税信息查询授权书",
        "上海浦江小微科技有限公司",
        samples.SAMPLE_USCC,
        "增值税纳税申报数据",
        "2027-11-26",
        "小微企业信用贷款审批及贷后管理",
    ):
        assert expected in text


def test_loan_contract_shows_amount_rate_and_schedule() -> None:
    contract = samples.sample_loan_contract()
    text = documents.extract_text(documents.render_loan_contract(contract))
    total_interest = sum((r.interest for r in contract.schedule), Decimal(0))
    for expected in (
        "个人借款合同",
        "张晓明",
        "¥150,000.00",
        "壹拾伍万元整",
        "7.2000%",
        "24 个月",
        f"¥{total_interest:,.2f}",
        "还款计划摘要",
        "合计 Total",
    ):
        assert expected in text
    assert "…" in text  # 24 rows are summarised: first six, last three


def test_claim_form_lists_documents_and_appends_attachments() -> None:
    attachment = (
        FIXTURE_PDF.read_bytes() if FIXTURE_PDF.exists() else documents.render_consent(samples.sample_consent())
    )
    pdf = documents.render_claim_form(samples.sample_claim_form(), [attachment])
    assert len(PdfReader(io.BytesIO(pdf)).pages) == 1 + len(PdfReader(io.BytesIO(attachment)).pages)
    text = documents.extract_text(pdf)
    for expected in (
        "保险理赔申请书",
        "陈小燕",
        "PA-2025-99887766",
        "壹万贰仟捌佰伍拾元陆角整",
        "出院小结",
        "腹腔镜阑尾切除术",
    ):
        assert expected in text


def test_same_data_same_bytes() -> None:
    contract = samples.sample_loan_contract()
    assert documents.render_loan_contract(contract) == documents.render_loan_contract(contract)


def test_structs_decode_money_from_strings() -> None:
    raw = msgspec.json.encode(samples.sample_loan_contract())
    assert b'"amount":"150000.00"' in raw
    assert msgspec.json.decode(raw, type=documents.LoanContract) == samples.sample_loan_contract()


@pytest.mark.parametrize(
    ("amount", "words"),
    [
        ("0.00", "零元整"),
        ("0.05", "伍分"),
        ("0.50", "伍角整"),
        ("1.00", "壹元整"),
        ("15.00", "壹拾伍元整"),
        ("1010.10", "壹仟零壹拾元壹角整"),
        ("10005.50", "壹万零伍元伍角整"),
        ("100000.00", "壹拾万元整"),
        ("1000500.00", "壹佰万零伍佰元整"),
        ("100001000.00", "壹亿零壹仟元整"),
        ("20000000.00", "贰仟万元整"),
        ("3.07", "叁元零柒分"),
        ("12850.60", "壹万贰仟捌佰伍拾元陆角整"),
    ],
)
def test_rmb_capitals(amount: str, words: str) -> None:
    assert money.rmb_upper(Decimal(amount)) == words


@given(st.integers(min_value=0, max_value=10**14))
def test_rmb_capitals_use_only_financial_characters(cents: int) -> None:
    words = money.rmb_upper(Decimal(cents) / 100)
    assert set(words) <= set("零壹贰叁肆伍陆柒捌玖拾佰仟万亿元角分整")
    assert words.endswith(("整", "分"))
    assert "零零" not in words


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"amount": Decimal("150000.001")}, "amount_invalid"),
        ({"amount": Decimal("-1.00")}, "amount_invalid"),
        ({"annual_rate": Decimal("1.5")}, "annual_rate_invalid"),
        ({"term_months": 12}, "schedule_invalid"),
        ({"amount": Decimal("150000.01")}, "schedule_invalid"),
    ],
)
def test_loan_contract_inputs_are_checked(change: dict[str, object], code: str) -> None:
    with pytest.raises(errors.InvalidInput) as refused:
        documents.render_loan_contract(msgspec.structs.replace(samples.sample_loan_contract(), **change))
    assert refused.value.code == code


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"taxpayer_id": "91310115MA1K3XKX43"}, "taxpayer_id_invalid"),
        ({"scope": []}, "scope_missing"),
        ({"expires_on": samples.sample_consent().valid_from}, "expiry_invalid"),
    ],
)
def test_consent_inputs_are_checked(change: dict[str, object], code: str) -> None:
    with pytest.raises(errors.InvalidInput) as refused:
        documents.render_consent(msgspec.structs.replace(samples.sample_consent(), **change))
    assert refused.value.code == code


@pytest.mark.parametrize(
    ("change", "code"),
    [({"description": "x" * 2001}, "description_too_long"), ({"claimant_name": "王\x1b五"}, "claimant_name_invalid")],
)
def test_document_text_is_checked(change: dict[str, object], code: str) -> None:
    with pytest.raises(errors.InvalidInput) as refused:
        documents.render_claim_form(msgspec.structs.replace(samples.sample_claim_form(), **change))
    assert refused.value.code == code


def test_missing_cjk_font_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(fonts, "_registered", {})
    monkeypatch.setattr(fonts, "_CANDIDATES", (tmp_path / "none.ttc",))
    monkeypatch.delenv(fonts.ENV_FONT, raising=False)
    with pytest.raises(errors.FontUnavailable) as refused:
        documents.render_consent(samples.sample_consent())
    assert refused.value.code == "cjk_font_missing"
    assert "fonts-wqy-microhei" in refused.value.message
