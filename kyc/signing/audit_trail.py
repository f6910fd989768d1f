"""The audit-trail page: who signed, when, from where, with which face check, over which bytes.

Why the page goes in with the *first* signature and not just before the last one: pyHanko's
difference analysis classes a page added after a signature as an illegitimate change (modification
level OTHER), and so it does a document-level attachment (the catalog gains /Names); either would
leave the customer's signature "intact but modified". Instead:

* the page is added in the same incremental update as the first signature, so the original
  document's bytes stay an exact prefix of every signed version; its SHA-256 and length, printed
  and recorded on the page, let anyone (and ``verify``) re-check what the first signer was shown;
* the page has one box per signer; each signature's visible widget is placed in the next free box
  and its appearance carries that signer's evidence. Adding a signature field with its widget is
  an allowed change (FORM_FILLING), so every earlier signature stays valid, and each box is
  covered by the signature it belongs to and by all later ones.

The page is rendered with reportlab (CJK font subset embedded) and inserted with pyHanko's
incremental writer; a ``/PieceInfo`` entry marks it so later signers find their box.
"""
# pyHanko's PDF object, layout and timestamper constructors are unannotated:
# mypy: disable-error-code="no-untyped-call"
# ruff: noqa: RUF001  # Chinese text uses full-width punctuation on purpose

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Iterable
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import msgspec
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.fields import enumerate_sig_fields
from reportlab.lib.pagesizes import A4
from reportlab.pdfbase.pdfmetrics import stringWidth
from reportlab.pdfgen import canvas

from kyc.signing.fonts import cjk_font
from kyc.signing.models import ROLE_LABELS, SignerEvidence

if TYPE_CHECKING:
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.pdf_utils.rw_common import PdfHandler

SLOTS = 4
FIELD_PREFIX = "BranchlessSig"
_PIECE_KEY = "/Branchless"
_MARGIN = 40.0
_SLOT_H = 140.0
_SLOT_GAP = 10.0
_SLOTS_TOP = 660.0


class TrailHeader(msgspec.Struct, frozen=True):
    """Facts printed once, when the page is added with the first signature."""

    title: str
    original_sha256: str
    original_length: int
    original_pages: int
    created_at: dt.datetime


class SlotEntry(msgspec.Struct, frozen=True):
    """One signer's box: rendered as the visible appearance of that signer's signature."""

    slot: int
    signer_name: str
    signed_at: dt.datetime
    reason: str
    location: str
    certificate_subject: str
    shown_sha256: str
    prior_sha256: str
    evidence_digest: str
    timestamped: bool
    evidence: SignerEvidence | None


class TrailState(msgspec.Struct, frozen=True):
    page_index: int
    next_slot: int
    original_sha256: str
    """As recorded on the page (inside the first signature's revision)."""
    original_length: int


def slot_box(slot: int) -> tuple[int, int, int, int]:
    """Page coordinates (x1, y1, x2, y2) of box ``slot`` (0-based) on the trail page."""
    y1 = _SLOTS_TOP - (slot + 1) * (_SLOT_H + _SLOT_GAP) + _SLOT_GAP
    return int(_MARGIN), int(y1), int(A4[0] - _MARGIN), int(y1 + _SLOT_H)


def _local(moment: dt.datetime, tz: str) -> str:
    return moment.astimezone(ZoneInfo(tz)).isoformat(sep=" ", timespec="seconds")


def _fit(text: str, font: str, size: float, width: float) -> str:
    """Cut ``text`` to ``width`` points with an ellipsis (user agents can be long)."""
    if stringWidth(text, font, size) <= width:
        return text
    while text and stringWidth(text + "…", font, size) > width:
        text = text[:-1]
    return text + "…"


def render_trail_page(header: TrailHeader, *, tz: str = "Asia/Shanghai") -> bytes:
    """A one-page A4 PDF: the header, and empty numbered boxes the signatures will fill."""
    font = cjk_font()
    buf = io.BytesIO()
    c = canvas.Canvas(buf, pagesize=A4, pageCompression=1, invariant=1)
    c.setTitle("签署审计记录 Signing audit trail")
    width, height = A4
    usable = width - 2 * _MARGIN
    c.setFont(font, 16)
    c.drawString(_MARGIN, height - 50, "签署审计记录  Signing audit trail")
    lines = [
        f"文档 Document: {header.title or '(untitled)'}",
        f"原文 SHA-256（首次展示 as first shown, revision 1）: {header.original_sha256}",
        f"原文页数 Original pages: {header.original_pages}    本页生成 Page added: {_local(header.created_at, tz)}",
        "每个签署栏是该签名的可见外观，由该签名及其后所有签名覆盖；任何后续修改均可被检测。",
        "Each box below is the visible appearance of one signature, covered by that signature and every later one.",
    ]
    c.setFont(font, 8.5)
    y = height - 75
    for line in lines:
        c.drawString(_MARGIN, y, _fit(line, font, 8.5, usable))
        y -= 14
    c.setFont(font, 9)
    for slot in range(SLOTS):
        x1, y1, x2, y2 = slot_box(slot)
        c.setStrokeGray(0.6)
        c.rect(x1, y1, x2 - x1, y2 - y1)
        c.setFillGray(0.55)
        c.drawString(x1 + 8, y2 - 16, f"签署栏 {slot + 1}  Signature box {slot + 1} — 待签署 awaiting signature")
    c.setFillGray(0.3)
    c.setFont(font, 7)
    c.drawString(_MARGIN, 40, "Branchless e-signature audit trail · PAdES (ETSI EN 319 142) · 《电子签名法》第十三条")
    c.showPage()
    c.save()
    return buf.getvalue()


def render_slot_appearance(entry: SlotEntry, *, tz: str = "Asia/Shanghai") -> bytes:
    """The appearance of one signature: a PDF page exactly the size of its box, opaque white."""
    font = cjk_font()
    x1, y1, x2, y2 = slot_box(entry.slot)
    w, h = float(x2 - x1), float(y2 - y1)
    ev = entry.evidence
    role = ROLE_LABELS.get(ev.role, ev.role) if ev else ROLE_LABELS["platform"]
    lines = [
        f"签署时间 Signed at: {_local(entry.signed_at, tz)}    "
        + ("时间戳 RFC 3161 timestamp (PAdES B-T)" if entry.timestamped else "无时间戳 no timestamp (PAdES B-B)"),
        f"原因 Reason: {entry.reason}    地点 Location: {entry.location or '—'}",
        f"签名证书 Certificate: {entry.certificate_subject}",
    ]
    if ev is not None:
        lines.append(f"IP: {ev.ip_address}    会话 Session: {ev.session_ref or '—'}")
        lines.append(f"浏览器 Browser: {ev.user_agent or '—'}")
        if ev.face_distance is not None and ev.face_checked_at is not None:
            lines.append(
                f"人脸比对 Face match: distance {ev.face_distance:.4f} ≤ threshold {ev.face_threshold:.4f}"
                f" at {_local(ev.face_checked_at, tz)}    KYC 案件 case: {ev.kyc_case_id or '—'}"
            )
        elif ev.kyc_case_id:
            lines.append(f"KYC 案件 case: {ev.kyc_case_id}")
    else:
        lines.append("签署环境 Context: 平台签署，无会话证据 platform signature, no session evidence")
    lines += [
        f"展示文档 SHA-256 as shown: {entry.shown_sha256}",
        f"签署前文档 SHA-256 as signed (prior bytes): {entry.prior_sha256}",
        f"证据摘要 Evidence digest: {entry.evidence_digest}",
    ]
    buf = io.BytesIO()
    c = canvas.Canvas(buf, pagesize=(w, h), pageCompression=1, invariant=1)
    c.setFillGray(1.0)
    c.rect(0, 0, w, h, stroke=0, fill=1)
    c.setStrokeColorRGB(0.1, 0.3, 0.6)
    c.setLineWidth(1.2)
    c.rect(0.6, 0.6, w - 1.2, h - 1.2)
    c.setFillColorRGB(0.1, 0.2, 0.5)
    c.setFont(font, 10.5)
    c.drawString(8, h - 16, _fit(f"签署栏 {entry.slot + 1} · {role} — {entry.signer_name}", font, 10.5, w - 16))
    c.setFillGray(0.1)
    c.setFont(font, 7.4)
    y = h - 30
    for line in lines:
        c.drawString(8, y, _fit(line, font, 7.4, w - 16))
        y -= 11.2
    c.showPage()
    c.save()
    return buf.getvalue()


def append_trail_page(writer: IncrementalPdfFileWriter, trail_pdf: bytes, header: TrailHeader) -> int:
    """Insert the rendered trail page as the last page, in ``writer``'s incremental update.

    Returns the new page's index. Contents and resources are imported as objects (not wrapped in
    a form XObject) so text extraction reads the page like any other.
    """
    source = PdfFileReader(io.BytesIO(trail_pdf))
    page_ref, resources = source.find_page_for_modification(0)
    page = page_ref.get_object()
    private = generic.DictionaryObject(
        {
            generic.NameObject("/Kind"): generic.NameObject("/AuditTrail"),
            generic.NameObject("/Version"): generic.NumberObject(1),
            generic.NameObject("/Slots"): generic.NumberObject(SLOTS),
            generic.NameObject("/OriginalSHA256"): generic.TextStringObject(header.original_sha256),
            generic.NameObject("/OriginalLength"): generic.NumberObject(header.original_length),
        }
    )
    piece = generic.DictionaryObject(
        {
            generic.NameObject("/LastModified"): generic.pdf_date(header.created_at),
            generic.NameObject("/Private"): private,
        }
    )
    new_page = generic.DictionaryObject(
        {
            generic.NameObject("/Type"): generic.NameObject("/Page"),
            generic.NameObject("/MediaBox"): generic.ArrayObject(generic.FloatObject(v) for v in (0, 0, *A4)),
            generic.NameObject("/Resources"): writer.import_object(resources),
            generic.NameObject("/Contents"): writer.import_object(page.raw_get("/Contents")),
            generic.NameObject("/PieceInfo"): generic.DictionaryObject({generic.NameObject(_PIECE_KEY): piece}),
        }
    )
    page_count = int(writer.root["/Pages"]["/Count"])
    writer.insert_page(new_page)
    return page_count


def _page_indices_reversed(handler: PdfHandler) -> Iterable[int]:
    return range(int(handler.root["/Pages"]["/Count"]) - 1, -1, -1)


def find_trail(handler: PdfHandler) -> TrailState | None:
    """Locate our trail page (searching from the end) and the next free signature box."""
    for index in _page_indices_reversed(handler):
        page_ref, _ = handler.find_page_for_modification(index)
        piece = page_ref.get_object().get("/PieceInfo")
        if isinstance(piece, generic.DictionaryObject) and _PIECE_KEY in piece:
            used = [0]
            for name, _value, _ref in enumerate_sig_fields(handler):
                if name and name.startswith(FIELD_PREFIX) and name[len(FIELD_PREFIX) :].isdigit():
                    used.append(int(name[len(FIELD_PREFIX) :]))
            private = piece[_PIECE_KEY].get("/Private")
            private = private if isinstance(private, generic.DictionaryObject) else generic.DictionaryObject()
            length = private.get("/OriginalLength")
            return TrailState(
                page_index=index,
                next_slot=max(used),
                original_sha256=str(private.get("/OriginalSHA256", "")),
                original_length=length if isinstance(length, int) else -1,
            )
    return None


def field_name(slot: int) -> str:
    return f"{FIELD_PREFIX}{slot + 1}"
