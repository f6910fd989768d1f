"""Documents to sign, generated from the customer's data: tax-data consent, loan contract, claim form.

Layout is reportlab (platypus) with the CJK font subset-embedded, so Chinese renders in any viewer
and extracts again as text. Output is deterministic (``invariant``): the same data gives the same
bytes, so the SHA-256 of the document as shown can be recomputed from the database record.
Money is ``Decimal`` (JSON strings), never float; amounts carry at most two decimals and are also
written in Chinese capitals, as contracts customarily are. pypdf assembles (appends supporting
documents) and reads back.
"""
# ruff: noqa: RUF001  # Chinese text uses full-width punctuation on purpose

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import msgspec
from pypdf import PdfReader, PdfWriter
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle
from stdnum.cn import ric, uscc

from kyc.signing.errors import InvalidInput
from kyc.signing.fonts import cjk_font
from kyc.signing.models import check_text
from kyc.signing.money import check_money, rmb_upper, yuan

_SIGN_NOTE = (
    "本文件以电子签名方式签署，签署记录见文末《签署审计记录》页。"
    "This document is signed electronically; see the audit-trail page at the end."
)


class TaxDataConsent(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Authorisation for the platform to fetch the taxpayer's data from the tax bureau."""

    consent_id: str
    taxpayer_name: str
    taxpayer_id: str
    """Unified social credit code (enterprise) or resident identity number (individual)."""
    grantee: str
    purpose: str
    scope: list[str]
    valid_from: dt.date
    expires_on: dt.date


class ScheduleRow(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    period: int
    due_date: dt.date
    principal: Decimal
    interest: Decimal
    balance: Decimal


class LoanContract(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A loan agreement; ``schedule`` comes from the loans domain (the single source of truth)."""

    contract_no: str
    borrower_name: str
    borrower_id: str
    lender: str
    amount: Decimal
    annual_rate: Decimal
    """Nominal annual rate as a fraction: ``0.0720`` is 7.20 %."""
    term_months: int
    repayment_method: str
    start_date: dt.date
    schedule: list[ScheduleRow]


class ClaimDocument(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: str
    kind: str
    sha256: str | None = None


class ClaimForm(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    claim_no: str
    policy_no: str
    insurer: str
    claimant_name: str
    claimant_id: str
    claim_type: str
    incident_date: dt.date
    amount_claimed: Decimal
    description: str
    documents: list[ClaimDocument]


# --------------------------------------------------------------------------- value checks


_LONG_TEXT = {"description": 2000, "purpose": 300}


def _check_strings(struct: msgspec.Struct, prefix: str = "") -> None:
    """Every string of a document (nested structs and lists too): no control characters, bounded.

    The values end up printed in a legal document, so a stray control character or a megabyte of
    text is refused here rather than rendered.
    """
    for field in msgspec.structs.fields(struct):
        value = getattr(struct, field.name)
        items = value if isinstance(value, list) else [value]
        for item in items:
            if isinstance(item, str):
                check_text(item, prefix + field.name, max_len=_LONG_TEXT.get(field.name, 200), required=False)
            elif isinstance(item, msgspec.Struct):
                _check_strings(item, prefix)


def _taxpayer_id(value: str) -> str:
    compact = value.strip().upper()
    if not (uscc.is_valid(compact) or ric.is_valid(compact)):
        raise InvalidInput("taxpayer_id is neither a valid USCC nor a resident ID number", code="taxpayer_id_invalid")
    return compact


# --------------------------------------------------------------------------- layout


class _Styles:
    def __init__(self) -> None:
        font = cjk_font()
        self.title = ParagraphStyle("t", fontName=font, fontSize=17, leading=24, alignment=1, spaceAfter=6)
        self.h = ParagraphStyle("h", fontName=font, fontSize=11.5, leading=17, spaceBefore=8, spaceAfter=3)
        self.body = ParagraphStyle("b", fontName=font, fontSize=9.5, leading=15, wordWrap="CJK")
        self.small = ParagraphStyle("s", fontName=font, fontSize=8, leading=12, wordWrap="CJK", textColor=colors.grey)
        self.subtitle = ParagraphStyle("st", parent=self.small, alignment=1)
        self.font = font


def _esc(text: object) -> str:
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _kv_table(st: _Styles, rows: Sequence[tuple[str, str]]) -> Table:
    data = [[Paragraph(_esc(k), st.body), Paragraph(_esc(v), st.body)] for k, v in rows]
    table = Table(data, colWidths=[48 * mm, 122 * mm])
    table.setStyle(
        TableStyle(
            [
                ("GRID", (0, 0), (-1, -1), 0.4, colors.grey),
                ("BACKGROUND", (0, 0), (0, -1), colors.Color(0.94, 0.95, 0.97)),
                ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
            ]
        )
    )
    return table


def _build(title: str, subject: str, story: list[Any]) -> bytes:
    buf = io.BytesIO()
    doc = SimpleDocTemplate(
        buf,
        pagesize=A4,
        title=title,
        subject=subject,
        author="Branchless",
        creator="Branchless",
        invariant=1,
        leftMargin=20 * mm,
        rightMargin=20 * mm,
        topMargin=18 * mm,
        bottomMargin=18 * mm,
    )
    doc.build(story)
    return buf.getvalue()


def render_consent(consent: TaxDataConsent) -> bytes:
    """The tax-data authorisation (涉税信息查询授权书)."""
    _check_strings(consent)
    taxpayer_id = _taxpayer_id(consent.taxpayer_id)
    if consent.expires_on <= consent.valid_from:
        raise InvalidInput("expires_on must be after valid_from", code="expiry_invalid")
    if not consent.scope:
        raise InvalidInput("the consent needs at least one data category", code="scope_missing")
    st = _Styles()
    story: list[Any] = [
        Paragraph("涉税信息查询授权书", st.title),
        Paragraph("Authorisation to access tax data", st.subtitle),
        Spacer(1, 4 * mm),
        _kv_table(
            st,
            [
                ("授权编号 Consent no.", consent.consent_id),
                ("授权人 Taxpayer", consent.taxpayer_name),
                ("纳税人识别号 Taxpayer ID", taxpayer_id),
                ("被授权人 Grantee", consent.grantee),
                ("授权用途 Purpose", consent.purpose),
                ("有效期 Validity", f"{consent.valid_from.isoformat()} 至 to {consent.expires_on.isoformat()}"),
            ],
        ),
        Paragraph("授权查询范围 Scope of data", st.h),
    ]
    story += [Paragraph(f"{i}. {_esc(item)}", st.body) for i, item in enumerate(consent.scope, 1)]
    story += [
        Paragraph("授权声明 Declaration", st.h),
        Paragraph(
            f"本人/本单位 {_esc(consent.taxpayer_name)} 同意 {_esc(consent.grantee)} 在上述有效期内、仅为上述用途，"
            "通过税务机关或其授权渠道查询并使用上述范围内的涉税信息。授权到期自动失效；本人/本单位可随时撤回授权，"
            "撤回不影响撤回前已进行的处理。",
            st.body,
        ),
        Paragraph(
            "The taxpayer authorises the grantee to obtain and use the listed tax data only for the stated purpose "
            "and period. The authorisation lapses on expiry and may be withdrawn at any time.",
            st.small,
        ),
        Spacer(1, 6 * mm),
        Paragraph(_SIGN_NOTE, st.small),
    ]
    return _build("涉税信息查询授权书 Tax-data consent", consent.consent_id, story)


def _check_schedule(contract: LoanContract) -> None:
    _check_strings(contract)
    check_money(contract.amount, "amount")
    if not Decimal(0) <= contract.annual_rate < Decimal(1):
        raise InvalidInput("annual_rate is a fraction between 0 and 1", code="annual_rate_invalid")
    rows = contract.schedule
    if contract.term_months < 1 or len(rows) != contract.term_months:
        raise InvalidInput("the schedule must have one row per month of the term", code="schedule_invalid")
    if [r.period for r in rows] != list(range(1, len(rows) + 1)):
        raise InvalidInput("schedule periods must run 1, 2, 3 ...", code="schedule_invalid")
    for r in rows:
        check_money(r.principal, "principal", allow_zero=True)
        check_money(r.interest, "interest", allow_zero=True)
        check_money(r.balance, "balance", allow_zero=True)
    if sum((r.principal for r in rows), Decimal(0)) != contract.amount or rows[-1].balance != 0:
        raise InvalidInput("the schedule's principal does not repay the amount exactly", code="schedule_invalid")


def render_loan_contract(contract: LoanContract) -> bytes:
    """The loan contract (借款合同) with its repayment schedule summary."""
    _check_schedule(contract)
    st = _Styles()
    rows = contract.schedule
    total_interest = sum((r.interest for r in rows), Decimal(0))
    shown = list(rows) if len(rows) <= 12 else [*rows[:6], None, *rows[-3:]]
    header = ["期数 No.", "还款日 Due", "本金 Principal", "利息 Interest", "应还 Payment", "剩余本金 Balance"]
    data: list[list[str]] = [header]
    for r in shown:
        if r is None:
            data.append(["…"] * 6)
        else:
            data.append(
                [
                    str(r.period),
                    r.due_date.isoformat(),
                    yuan(r.principal),
                    yuan(r.interest),
                    yuan(r.principal + r.interest),
                    yuan(r.balance),
                ]
            )
    data.append(
        ["合计 Total", "", yuan(contract.amount), yuan(total_interest), yuan(contract.amount + total_interest), ""]
    )
    table = Table(data, repeatRows=1, colWidths=[18 * mm, 26 * mm, 31 * mm, 29 * mm, 33 * mm, 33 * mm])
    table.setStyle(
        TableStyle(
            [
                ("FONT", (0, 0), (-1, -1), st.font, 8.5),
                ("GRID", (0, 0), (-1, -1), 0.4, colors.grey),
                ("BACKGROUND", (0, 0), (-1, 0), colors.Color(0.94, 0.95, 0.97)),
                ("ALIGN", (2, 1), (-1, -1), "RIGHT"),
            ]
        )
    )
    story: list[Any] = [
        Paragraph("个人借款合同", st.title),
        Paragraph("Loan agreement", st.subtitle),
        Spacer(1, 4 * mm),
        _kv_table(
            st,
            [
                ("合同编号 Contract no.", contract.contract_no),
                ("借款人 Borrower", f"{contract.borrower_name}（证件号 ID {contract.borrower_id}）"),
                ("贷款人 Lender", contract.lender),
                ("借款金额 Amount", f"{yuan(contract.amount)}（人民币{rmb_upper(contract.amount)}）"),
                ("年利率 Annual rate", f"{contract.annual_rate * 100:.4f}%"),
                ("借款期限 Term", f"{contract.term_months} 个月 months，自 from {contract.start_date.isoformat()}"),
                ("还款方式 Repayment", contract.repayment_method),
                ("利息合计 Total interest", f"{yuan(total_interest)}（人民币{rmb_upper(total_interest)}）"),
            ],
        ),
        Paragraph("还款计划摘要 Repayment schedule summary", st.h),
        table,
        Paragraph("主要条款 Principal terms", st.h),
        Paragraph(
            "一、借款人应按上表按期足额还款。二、逾期、提前还款及其他权利义务按双方约定的借款条款执行。"
            "三、借款人确认已阅读并理解本合同全部内容。",
            st.body,
        ),
        Paragraph(
            "The borrower repays per the schedule above; late and early repayment and all other rights and duties "
            "follow the agreed loan terms. The borrower confirms having read and understood this agreement.",
            st.small,
        ),
        Spacer(1, 6 * mm),
        Paragraph(_SIGN_NOTE, st.small),
    ]
    return _build("个人借款合同 Loan agreement", contract.contract_no, story)


def render_claim_form(claim: ClaimForm, attachments: Sequence[bytes] = ()) -> bytes:
    """The claim form (理赔申请书); supporting PDFs in ``attachments`` are appended as pages."""
    _check_strings(claim)
    check_money(claim.amount_claimed, "amount_claimed")
    st = _Styles()
    docs = [["#", "材料 Document", "类型 Kind", "SHA-256"]] + [
        [str(i), Paragraph(_esc(d.name), st.body), Paragraph(_esc(d.kind), st.body), (d.sha256 or "—")[:16]]
        for i, d in enumerate(claim.documents, 1)
    ]
    table = Table(docs, repeatRows=1, colWidths=[10 * mm, 80 * mm, 40 * mm, 40 * mm])
    table.setStyle(
        TableStyle(
            [
                ("FONT", (0, 0), (-1, -1), st.font, 8.5),
                ("GRID", (0, 0), (-1, -1), 0.4, colors.grey),
                ("BACKGROUND", (0, 0), (-1, 0), colors.Color(0.94, 0.95, 0.97)),
            ]
        )
    )
    story: list[Any] = [
        Paragraph("保险理赔申请书", st.title),
        Paragraph("Insurance claim form", st.subtitle),
        Spacer(1, 4 * mm),
        _kv_table(
            st,
            [
                ("理赔编号 Claim no.", claim.claim_no),
                ("保单号 Policy no.", claim.policy_no),
                ("保险公司 Insurer", claim.insurer),
                ("申请人 Claimant", f"{claim.claimant_name}（证件号 ID {claim.claimant_id}）"),
                ("理赔类型 Claim type", claim.claim_type),
                ("出险日期 Date of loss", claim.incident_date.isoformat()),
                (
                    "申请金额 Amount claimed",
                    f"{yuan(claim.amount_claimed)}（人民币{rmb_upper(claim.amount_claimed)}）",
                ),
            ],
        ),
        Paragraph("事故经过 Description", st.h),
        Paragraph(_esc(claim.description), st.body),
        Paragraph("随附材料 Supporting documents", st.h),
        table,
        Paragraph("申请人声明 Declaration", st.h),
        Paragraph("申请人保证所填内容及所附材料真实、完整，如有虚假，愿承担相应法律责任。", st.body),
        Spacer(1, 6 * mm),
        Paragraph(_SIGN_NOTE, st.small),
    ]
    form = _build("保险理赔申请书 Claim form", claim.claim_no, story)
    return assemble([form, *attachments]) if attachments else form


def assemble(parts: Sequence[bytes]) -> bytes:
    """Concatenate PDFs page by page (pypdf); encrypted parts are refused."""
    writer = PdfWriter()
    for index, part in enumerate(parts):
        reader = PdfReader(io.BytesIO(part))
        if reader.is_encrypted:
            raise InvalidInput(f"attachment {index} is encrypted", code="attachment_encrypted")
        writer.append(reader)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def extract_text(pdf: bytes) -> str:
    """All text of a PDF in page order (pypdf), e.g. to check what a customer was shown."""
    return "\n".join(page.extract_text() or "" for page in PdfReader(io.BytesIO(pdf)).pages)
