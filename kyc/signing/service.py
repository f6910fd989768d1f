"""Sign and verify PDFs: the entry points the web layer, jobs and CLI call.

``sign``, ``sign_with_receipt`` and ``verify`` are module-level functions over bytes and picklable
config objects, so the application runs them in its process pool (``app.cpu.run_cpu``): signing
is CPU-bound and pyHanko drives its own event loop (``asyncio.run``), so these must not be called
from inside a running loop. Keys and timestamper are opened once per worker process.

Every signature is PAdES (ETSI.CAdES.detached, SHA-256) in its own incremental update, so earlier
signatures keep verifying; B-T when a TSA is configured, B-B otherwise. The first signature also
adds the audit-trail page (see ``audit_trail``).
"""
# pyHanko's PDF object, layout and timestamper constructors are unannotated:
# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

import datetime as dt
import hashlib
import io
from typing import TYPE_CHECKING, Any

import msgspec
from pyhanko.pdf_utils.content import PdfContent
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.layout import AxisAlignment, BoxConstraints, Margins, SimpleBoxLayoutRule
from pyhanko.pdf_utils.misc import PdfError
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign import fields, signers
from pyhanko.sign.general import SigningError as PyHankoSigningError
from pyhanko.sign.timestamps.common_utils import TimestampRequestError
from pyhanko.stamp import StaticStampStyle

from kyc.signing import audit_trail
from kyc.signing.errors import (
    BrokenSignatures,
    DocumentChanged,
    EncryptedPdf,
    ForeignSignatures,
    InvalidInput,
    MalformedPdf,
    NotAPdf,
    PdfTooLarge,
    TimestampError,
    TooManyPages,
)
from kyc.signing.keys import KeyConfig, open_signer
from kyc.signing.models import (
    EvidenceRecord,
    InputLimits,
    SignerEvidence,
    SignOptions,
    SignReceipt,
    VerificationResult,
    check_evidence,
    check_text,
)
from kyc.signing.tsa import TsaConfig, open_timestamper
from kyc.signing.verification import integrity_faults, verify_reader

if TYPE_CHECKING:
    from pyhanko.pdf_utils.writer import BasePdfFileWriter
    from pyhanko.sign.signers.pdf_signer import PdfSigningSession

__all__ = ["check_pdf", "sign", "sign_with_receipt", "verify"]

_HEADER_WINDOW = 1024  # the spec lets "%PDF-" start anywhere in the first 1024 bytes


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def check_pdf(pdf: bytes, limits: InputLimits) -> PdfFileReader:
    """Refuse what we will not sign or verify, cheapest test first, and return a parsed reader.

    Order matters: size before parsing (a 2 GB upload is refused without reading it), the header
    before the parser (a JPEG is "not a PDF", not "malformed"), encryption before any content access.
    """
    if not isinstance(pdf, bytes | bytearray | memoryview):
        raise NotAPdf("expected the PDF as bytes")
    if len(pdf) > limits.max_bytes:
        raise PdfTooLarge(f"the PDF is {len(pdf)} bytes; the limit is {limits.max_bytes}")
    if b"%PDF-" not in bytes(pdf[:_HEADER_WINDOW]):
        raise NotAPdf("the file does not start with a PDF header")
    try:
        reader = PdfFileReader(io.BytesIO(bytes(pdf)), strict=True)
        encrypted = reader.encrypted or "/Encrypt" in reader.trailer_view
    except Exception as exc:  # the parser raises many types on hostile input; all mean "malformed"
        raise MalformedPdf(f"the PDF cannot be parsed: {_short(exc)}") from None
    if encrypted:
        raise EncryptedPdf("encrypted PDFs are refused; send the document without a password or restrictions")
    try:
        pages = reader.root["/Pages"]["/Count"]
    except Exception as exc:
        raise MalformedPdf(f"the PDF has no readable page tree: {_short(exc)}") from None
    if not isinstance(pages, int) or pages < 1:
        raise MalformedPdf("the PDF has no pages")
    if pages > limits.max_pages:
        raise TooManyPages(f"the PDF has {pages} pages; the limit is {limits.max_pages}")
    return reader


def _short(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
    return text[:200]


class _PdfPageContent(PdfContent):
    """A page of an in-memory PDF as appearance content (pyHanko's own variant reads a file)."""

    def __init__(self, pdf: bytes) -> None:
        super().__init__()
        self._pdf = pdf

    def render(self) -> bytes:
        xobj = self._ensure_writer.import_page_as_xobject(PdfFileReader(io.BytesIO(self._pdf)))
        self.resources.xobject["/SigAppearance"] = xobj
        x1, y1, x2, y2 = xobj.get_object()["/BBox"]
        self.box = BoxConstraints(width=abs(x1 - x2), height=abs(y1 - y2))
        return b"/SigAppearance Do"


class _PinnedTimeSigner(signers.PdfSigner):
    """PdfSigner whose session uses our signing time.

    The appearance is rendered before pyHanko starts, and must print the same instant as the
    signature's /M entry; pyHanko otherwise reads the clock itself.
    """

    def __init__(self, *args: Any, signing_time: dt.datetime, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._signing_time = signing_time

    def init_signing_session(self, pdf_out: BasePdfFileWriter, existing_fields_only: bool = False) -> PdfSigningSession:
        session = super().init_signing_session(pdf_out, existing_fields_only=existing_fields_only)
        session.system_time = self._signing_time
        return session


def evidence_digest(record: EvidenceRecord) -> str:
    """SHA-256 of the canonical JSON of ``record`` (msgspec encodes fields in declaration order)."""
    return sha256_hex(msgspec.json.encode(record))


def sign_with_receipt(
    pdf: bytes,
    *,
    signer_name: str,
    reason: str,
    location: str = "",
    evidence: SignerEvidence | None = None,
    key: KeyConfig,
    tsa: TsaConfig | None = None,
    options: SignOptions | None = None,
) -> SignReceipt:
    """Apply the next signature (audit-trail box, PAdES, optional timestamp) and describe it.

    Raises ``InvalidPdf`` subclasses for unusable files, ``InvalidInput`` for bad evidence,
    ``DocumentChanged`` if the signer was shown other bytes, ``KeyConfigError`` and
    ``TimestampError`` for infrastructure faults.
    """
    opts = options or SignOptions()
    reader = check_pdf(pdf, opts.limits)
    signer_name = check_text(signer_name, "signer_name", max_len=100)
    reason = check_text(reason, "reason", max_len=200)
    location = check_text(location, "location", max_len=100, required=False)
    signed_at = dt.datetime.now(dt.UTC).replace(microsecond=0)
    if evidence is not None:
        check_evidence(evidence, now=signed_at, max_face_age=opts.max_face_age)
    prior_sha256 = sha256_hex(bytes(pdf))
    shown_sha256 = evidence.shown_sha256.lower() if evidence and evidence.shown_sha256 else prior_sha256
    if shown_sha256 != prior_sha256:
        raise DocumentChanged("the document to sign is not the one shown to the signer")

    writer = IncrementalPdfFileWriter.from_reader(reader)
    try:
        page_index, slot = _next_box(
            reader, writer, pdf=bytes(pdf), prior_sha256=prior_sha256, signed_at=signed_at, opts=opts
        )
    except (PdfError, KeyError, TypeError) as exc:  # a page tree or form pyHanko cannot navigate
        raise MalformedPdf(f"the PDF's structure cannot be updated: {_short(exc)}") from None

    signer = open_signer(key)
    timestamper = open_timestamper(tsa) if tsa is not None else None
    name = audit_trail.field_name(slot)
    record = EvidenceRecord(name, signer_name, reason, location, signed_at, shown_sha256, prior_sha256, evidence)
    digest = evidence_digest(record)
    cert = signer.signing_cert
    appearance = audit_trail.render_slot_appearance(
        audit_trail.SlotEntry(
            slot=slot,
            signer_name=signer_name,
            signed_at=signed_at,
            reason=reason,
            location=location,
            certificate_subject=_cert_label(cert),
            shown_sha256=shown_sha256,
            prior_sha256=prior_sha256,
            evidence_digest=digest,
            timestamped=timestamper is not None,
            evidence=evidence,
        ),
        tz=opts.display_tz,
    )
    style = StaticStampStyle(
        background=_PdfPageContent(appearance),
        background_opacity=1.0,
        border_width=0,
        background_layout=SimpleBoxLayoutRule(
            x_align=AxisAlignment.ALIGN_MID, y_align=AxisAlignment.ALIGN_MID, margins=Margins.uniform(0)
        ),
    )
    meta = signers.PdfSignatureMetadata(
        field_name=name,
        name=signer_name,
        reason=reason,
        location=location or None,
        md_algorithm="sha256",
        subfilter=fields.SigSeedSubFilter.PADES,
    )
    pdf_signer = _PinnedTimeSigner(
        meta,
        signer=signer,
        timestamper=timestamper,
        stamp_style=style,
        new_field_spec=fields.SigFieldSpec(name, on_page=page_index, box=audit_trail.slot_box(slot)),
        signing_time=signed_at,
    )
    try:
        signed = pdf_signer.sign_pdf(writer).getvalue()
    except PdfError as exc:  # parseable, but pyHanko cannot write an update to it
        raise MalformedPdf(f"the PDF cannot be updated: {_short(exc)}") from None
    except TimestampRequestError as exc:
        raise TimestampError(f"timestamp authority failed: {_short(exc)}") from None
    except PyHankoSigningError as exc:
        raise InvalidInput(f"the PDF cannot take another signature: {_short(exc)}", code="not_signable") from None
    return SignReceipt(
        pdf=signed,
        field_name=name,
        signed_at=signed_at,
        level="B-T" if timestamper is not None else "B-B",
        shown_sha256=shown_sha256,
        prior_sha256=prior_sha256,
        signed_sha256=sha256_hex(signed),
        evidence_digest=digest,
    )


def _next_box(
    reader: PdfFileReader,
    writer: IncrementalPdfFileWriter,
    *,
    pdf: bytes,
    prior_sha256: str,
    signed_at: dt.datetime,
    opts: SignOptions,
) -> tuple[int, int]:
    """(page index, box) for this signature: a new trail page for the first signer, else the next box."""
    trail = audit_trail.find_trail(reader)
    if trail is not None:
        if trail.next_slot >= audit_trail.SLOTS:
            raise InvalidInput(f"the audit trail holds at most {audit_trail.SLOTS} signers", code="too_many_signers")
        _require_intact(reader, pdf)
        return trail.page_index, trail.next_slot
    if reader.embedded_signatures:
        raise ForeignSignatures("the PDF is already signed without a Branchless audit trail")
    header = audit_trail.TrailHeader(
        title=check_text(opts.document_title or _doc_title(reader), "document_title", max_len=120, required=False),
        original_sha256=prior_sha256,
        original_length=len(pdf),
        original_pages=int(reader.root["/Pages"]["/Count"]),
        created_at=signed_at,
    )
    trail_pdf = audit_trail.render_trail_page(header, tz=opts.display_tz)
    return audit_trail.append_trail_page(writer, trail_pdf, header), 0


def _require_intact(reader: PdfFileReader, pdf: bytes) -> None:
    """Refuse to countersign a document whose earlier signatures no longer hold.

    A later signature would otherwise cover (and seem to endorse) tampered or unsigned content.
    Trust is not judged here (that needs the verifier's roots), only integrity and coverage.
    """
    faults = integrity_faults(reader, pdf)
    if faults:
        raise BrokenSignatures("the earlier signatures do not hold: " + "; ".join(faults))


def sign(
    pdf: bytes,
    *,
    signer_name: str,
    reason: str,
    location: str = "",
    evidence: SignerEvidence | None = None,
    key: KeyConfig,
    tsa: TsaConfig | None = None,
    options: SignOptions | None = None,
) -> bytes:
    """``sign_with_receipt`` returning only the signed bytes."""
    return sign_with_receipt(
        pdf,
        signer_name=signer_name,
        reason=reason,
        location=location,
        evidence=evidence,
        key=key,
        tsa=tsa,
        options=options,
    ).pdf


def verify(pdf: bytes, trust_roots: list[bytes], limits: InputLimits | None = None) -> VerificationResult:
    """Verify every signature against ``trust_roots`` (DER or PEM certificates, nothing implicit).

    Input problems raise like ``sign``; a damaged or altered signature is a result, not an error.
    """
    reader = check_pdf(pdf, limits or InputLimits())
    try:
        return verify_reader(reader, bytes(pdf), trust_roots)
    except PdfError as exc:  # parsing is lazy: damage deep in the file surfaces only now
        raise MalformedPdf(f"the PDF is damaged: {_short(exc)}") from None


def _cert_label(cert: Any) -> str:
    """Common name and serial: enough to identify the certificate in the appearance, short enough to fit."""
    if cert is None:
        return ""
    common_name = cert.subject.native.get("common_name") or cert.subject.human_friendly
    return f"{common_name} (serial {format(cert.serial_number, 'x')[:16]}…)"


def _doc_title(reader: PdfFileReader) -> str:
    """The PDF's own /Title, stripped of anything that could not be printed (it is untrusted input)."""
    try:
        title = reader.trailer_view["/Info"]["/Title"]
    except (KeyError, TypeError):
        return ""
    if not isinstance(title, str):
        return ""
    return "".join(ch for ch in title if ch.isprintable())[:120]
