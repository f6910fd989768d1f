"""Verification of every signature in a PDF with pyHanko, summarised for people and machines.

Per signature: cryptographic integrity (the signed byte ranges hash to the signed digest), a
trusted chain to the configured roots (never the operating system's store: trust is explicit),
the signing time and any RFC 3161 timestamp, and what happened after it was applied (coverage and
pyHanko's difference analysis). A document is valid only when every signature is and the *last*
one covers the entire file: bytes after the last signature (junk or an unsigned incremental
update, even one pyHanko deems harmless, such as an /Info change) are unsigned content and fail.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from typing import TYPE_CHECKING

from asn1crypto import parser as asn1_parser
from pyhanko.sign.validation.generic_cms import validate_sig_integrity
from pyhanko.sign.validation.pdf_embedded import async_validate_pdf_signature, async_validate_pdf_timestamp
from pyhanko.sign.validation.status import PdfSignatureStatus, SignatureCoverageLevel
from pyhanko_certvalidator import ValidationContext

from kyc.signing.audit_trail import find_trail
from kyc.signing.errors import KeyConfigError
from kyc.signing.keys import load_certificates
from kyc.signing.models import SignatureReport, VerificationResult

if TYPE_CHECKING:
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.validation.pdf_embedded import EmbeddedPdfSignature
    from pyhanko.sign.validation.status import DocumentTimestampStatus


def _validation_context(trust_roots: Sequence[bytes]) -> ValidationContext:
    roots = []
    for blob in trust_roots:
        try:
            roots.extend(load_certificates(blob))
        except ValueError:
            raise KeyConfigError("a configured trust root is not a certificate") from None
    # allow_fetching=False: verification never leaves the machine. Revocation stays pyHanko's
    # default soft-fail, since the development CA publishes no CRL or OCSP responder.
    return ValidationContext(trust_roots=roots, allow_fetching=False)


def _padding_is_clean(sig: EmbeddedPdfSignature) -> bool:
    """True if /Contents holds the CMS blob followed by zero padding only.

    The placeholder is excluded from the signed byte range by design (ISO 32000-1 12.8.1), so
    pyHanko and poppler ignore what follows the CMS structure; a non-zero tail would be a channel
    for hiding data in a "valid" file, which a bank's verifier should not accept silently.
    """
    raw = bytes(sig.sig_object["/Contents"])
    try:
        _cls, _method, _tag, header, body, trailer = asn1_parser.parse(raw)
    except (ValueError, TypeError):
        return False
    return not raw[len(header) + len(body) + len(trailer) :].strip(b"\0")


def _text(sig: EmbeddedPdfSignature, key: str) -> str | None:
    value = sig.sig_object.get(key)
    return str(value) if value is not None else None


def _report(sig: EmbeddedPdfSignature, status: PdfSignatureStatus | DocumentTimestampStatus) -> SignatureReport:
    problems: list[str] = []
    cert_name = status.signing_cert.subject.human_friendly
    coverage = status.coverage.name if status.coverage is not None else "UNCLEAR"
    mod_level = status.modification_level.name if status.modification_level is not None else None
    permitted = bool(status.docmdp_ok) or status.modification_level is None
    if not status.intact:
        problems.append("the signed bytes were altered")
    elif not status.valid:
        problems.append("the signature value does not verify")
    if status.intact and status.valid and not status.trusted:  # pyHanko skips trust when the digest fails
        problems.append("the signer's certificate does not chain to a trusted root")
    if not permitted:
        problems.append(f"changes after signing are not permitted ({mod_level})")
    if not _padding_is_clean(sig):
        problems.append("the signature container carries unexpected data after the signature")
    timestamp = None
    is_doc_ts = sig.sig_object_type == "/DocTimeStamp"
    bottom_line = bool(status.intact and status.valid and status.trusted)
    if isinstance(status, PdfSignatureStatus):
        bottom_line = bool(status.bottom_line)
        signing_time = status.signer_reported_dt
        ts = status.timestamp_validity
        if ts is not None:
            timestamp = ts.timestamp
            if not (ts.intact and ts.valid and ts.trusted):
                problems.append("the signature timestamp does not verify or is not trusted")
        level = "B-T" if ts is not None else "B-B"
    else:
        signing_time = timestamp = status.timestamp
        level = "document-timestamp"
    return SignatureReport(
        field_name=str(sig.field_name),
        name=_text(sig, "/Name") or cert_name,
        certificate_subject=cert_name,
        signing_time=signing_time,
        timestamp=timestamp,
        intact=bool(status.intact),
        valid=bool(status.intact and status.valid),
        trusted=bool(status.trusted),
        coverage=coverage,
        modification_level=mod_level,
        modifications_permitted=permitted,
        level=level,
        reason=None if is_doc_ts else _text(sig, "/Reason"),
        location=None if is_doc_ts else _text(sig, "/Location"),
        ok=bottom_line and not problems,
        problems=problems,
    )


def _failed(sig: EmbeddedPdfSignature, why: str) -> SignatureReport:
    return SignatureReport(
        field_name=str(sig.field_name),
        name=_text(sig, "/Name") or "",
        certificate_subject="",
        signing_time=None,
        timestamp=None,
        intact=False,
        valid=False,
        trusted=False,
        coverage="UNCLEAR",
        modification_level=None,
        modifications_permitted=False,
        level="unknown",
        reason=_text(sig, "/Reason"),
        location=_text(sig, "/Location"),
        ok=False,
        problems=[f"the signature cannot be validated: {why}"],
    )


async def _validate_all(reader: PdfFileReader, vc: ValidationContext) -> list[SignatureReport]:
    # pyHanko's default key-usage rule applies: the signer's certificate must assert
    # non-repudiation (contentCommitment), as certificates for legally binding signatures do.
    reports: list[SignatureReport] = []
    for sig in reader.embedded_signatures:
        try:
            if sig.sig_object_type == "/DocTimeStamp":
                ts_status = await async_validate_pdf_timestamp(sig, validation_context=vc)
                reports.append(_report(sig, ts_status))
            else:
                status = await async_validate_pdf_signature(sig, vc, ts_validation_context=vc)
                reports.append(_report(sig, status))
        except Exception as exc:  # a mangled CMS blob raises assorted errors: a failed signature, not a crash
            reports.append(_failed(sig, (str(exc).splitlines() or [exc.__class__.__name__])[0][:200]))
    return reports


def _original_sha256(reader: PdfFileReader, pdf: bytes) -> tuple[str | None, str | None]:
    """Re-hash the document as first shown: the leading bytes our first signature's update built on.

    Returns ``(digest, None)`` when it matches the audit trail's record, ``(None, problem)`` when it
    does not, and ``(None, None)`` for documents without a Branchless audit trail.
    """
    trail = find_trail(reader)
    if trail is None:
        return None, None
    if not 0 < trail.original_length <= len(pdf):
        return None, "the audit trail's record of the original document is unreadable"
    digest = hashlib.sha256(pdf[: trail.original_length]).hexdigest()
    if digest != trail.original_sha256:
        return None, "the original document no longer matches the audit trail's SHA-256"
    return digest, None


def integrity_faults(reader: PdfFileReader, pdf: bytes) -> list[str]:
    """What is wrong with the existing signatures, judging integrity and coverage only (no trust).

    Used before countersigning, where the verifier's trust roots are not at hand; it also skips
    certificate path building, which is the slow part of a full verification.
    """
    faults: list[str] = []
    signatures = reader.embedded_signatures
    for sig in signatures:
        try:
            sig.compute_integrity_info()
            summary = sig.summarise_integrity_info()
            content_type = "tst_info" if sig.sig_object_type == "/DocTimeStamp" else "data"
            intact, valid = validate_sig_integrity(sig.signer_info, sig.signer_cert, content_type, sig.compute_digest())
        except Exception as exc:  # a mangled CMS blob: the signature does not hold
            faults.append(f"{sig.field_name}: cannot be checked ({exc.__class__.__name__})")
            continue
        if not (intact and valid):
            faults.append(f"{sig.field_name}: the signed bytes were altered")
        elif summary["docmdp_ok"] is False:
            faults.append(f"{sig.field_name}: followed by changes that are not permitted")
        if not _padding_is_clean(sig):
            faults.append(f"{sig.field_name}: unexpected data in the signature container")
    if signatures and signatures[-1].coverage != SignatureCoverageLevel.ENTIRE_FILE:
        faults.append("content follows the last signature")
    _, original_problem = _original_sha256(reader, pdf)
    if original_problem:
        faults.append(original_problem)
    return faults


def verify_reader(reader: PdfFileReader, pdf: bytes, trust_roots: Sequence[bytes]) -> VerificationResult:
    """Validate every signature of an already checked reader (see ``service.verify``)."""
    vc = _validation_context(trust_roots)
    try:
        reports = asyncio.run(_validate_all(reader, vc))
    except Exception as exc:  # pyHanko parses each signature's CMS while listing them: damage surfaces here
        why = (str(exc).splitlines() or [exc.__class__.__name__])[0][:200]
        return VerificationResult(
            valid=False,
            intact=False,
            trusted=False,
            covers_whole_file=False,
            signers=[],
            problems=[f"a signature cannot be parsed: {why}"],
        )
    original, original_problem = _original_sha256(reader, pdf)
    problems = [original_problem] if original_problem else []
    if not reports:
        problems.append("the document has no signatures")
    covers = bool(reports) and reports[-1].coverage == SignatureCoverageLevel.ENTIRE_FILE.name
    if reports and not covers:
        problems.append("content was added after the last signature (it does not cover the whole file)")
    intact = bool(reports) and all(r.intact and r.valid for r in reports)
    trusted = bool(reports) and all(r.trusted for r in reports)
    valid = intact and trusted and covers and original_problem is None and all(r.ok for r in reports)
    for r in reports:
        problems.extend(f"{r.field_name}: {p}" for p in r.problems)
    return VerificationResult(
        valid=valid,
        intact=intact,
        trusted=trusted,
        covers_whole_file=covers,
        signers=reports,
        problems=problems,
        original_sha256=original,
    )
