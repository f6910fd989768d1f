"""Plain data crossing the package boundary: signing evidence, limits, receipts, verification results.

All are msgspec Structs, so the web layer decodes them straight from JSON and they pickle into
worker processes. Validation that needs more than types (IP syntax, freshness of the face check)
lives in ``check_evidence`` and ``check_text`` so the service applies it in one place.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import math
import re
import unicodedata
from typing import Literal

import msgspec

from kyc.signing.errors import InvalidInput

Role = Literal["customer", "account_manager", "insurer", "platform"]
ROLE_LABELS: dict[str, str] = {
    "customer": "客户 Customer",
    "account_manager": "客户经理 Account manager",
    "insurer": "保险公司 Insurer",
    "platform": "平台 Platform",
}
_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
_CLOCK_SKEW = dt.timedelta(seconds=30)


class SignerEvidence(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What the ceremony established about the person signing, recorded on the audit trail.

    ``session_ref`` is an opaque, non-secret reference to the authenticated session (for example a
    hash of the session id), never the session token itself. ``shown_sha256`` is the SHA-256 of the
    exact bytes displayed to this signer; signing refuses if the bytes to sign differ.
    """

    role: Role
    ip_address: str
    user_agent: str
    session_ref: str = ""
    kyc_case_id: str | None = None
    face_distance: float | None = None
    face_threshold: float | None = None
    face_checked_at: dt.datetime | None = None
    shown_sha256: str | None = None


class InputLimits(msgspec.Struct, frozen=True):
    """Refuse PDFs beyond these before parsing deeply (denial-of-service guard)."""

    max_bytes: int = 20 * 1024 * 1024
    max_pages: int = 500


class SignOptions(msgspec.Struct, frozen=True):
    """Tunables of a signing call; the defaults suit the platform."""

    limits: InputLimits = InputLimits()
    document_title: str = ""
    max_face_age: dt.timedelta = dt.timedelta(minutes=5)
    """How old the face check may be at signing time: the spec asks for a *fresh* check."""
    display_tz: str = "Asia/Shanghai"


class SignReceipt(msgspec.Struct, frozen=True):
    """What the caller stores in its database and audit log after a signature."""

    pdf: bytes
    field_name: str
    signed_at: dt.datetime
    level: Literal["B-B", "B-T"]
    shown_sha256: str
    prior_sha256: str
    signed_sha256: str
    evidence_digest: str
    """SHA-256 of the canonical JSON evidence record, also printed in the signature appearance."""


class EvidenceRecord(msgspec.Struct, frozen=True):
    """The canonical record whose digest links the database row to the signed PDF."""

    field_name: str
    signer_name: str
    reason: str
    location: str
    signed_at: dt.datetime
    shown_sha256: str
    prior_sha256: str
    evidence: SignerEvidence | None


class SignatureReport(msgspec.Struct, frozen=True):
    """Verification of one signature (or document timestamp), in document order."""

    field_name: str
    name: str
    """The signer as recorded in the signature dictionary (/Name), else the certificate's name."""
    certificate_subject: str
    signing_time: dt.datetime | None
    timestamp: dt.datetime | None
    intact: bool
    """The signed byte ranges still hash to the digest the signature covers."""
    valid: bool
    """Intact and the signature value verifies with the certificate's public key."""
    trusted: bool
    """The certificate chains to a configured root (not evaluated when the bytes were altered)."""
    coverage: str
    """pyHanko's SignatureCoverageLevel name: ENTIRE_FILE, ENTIRE_REVISION, ..."""
    modification_level: str | None
    modifications_permitted: bool
    level: str
    reason: str | None
    location: str | None
    ok: bool
    problems: list[str]


class VerificationResult(msgspec.Struct, frozen=True):
    """The verdict on a whole document: valid only if every signature is, and the last covers the file."""

    valid: bool
    intact: bool
    trusted: bool
    covers_whole_file: bool
    signers: list[SignatureReport]
    problems: list[str]
    original_sha256: str | None = None
    """SHA-256 of the document as first shown, re-computed from the file's leading bytes and matching
    the audit trail's record; ``None`` without a Branchless audit trail."""


def check_text(value: str, what: str, *, max_len: int, required: bool = True) -> str:
    """Normalise and bound free text that ends up in the PDF (no control characters, NFC)."""
    text = unicodedata.normalize("NFC", value).strip()
    if required and not text:
        raise InvalidInput(f"{what} is required", code=f"{what}_missing")
    if len(text) > max_len:
        raise InvalidInput(f"{what} is longer than {max_len} characters", code=f"{what}_too_long")
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co") for ch in text):
        raise InvalidInput(f"{what} contains control characters", code=f"{what}_invalid")
    return text


def check_sha256(value: str, what: str) -> str:
    digest = value.strip().lower()
    if not _SHA256_HEX.match(digest):
        raise InvalidInput(f"{what} must be a SHA-256 hex digest", code=f"{what}_invalid")
    return digest


def check_evidence(evidence: SignerEvidence, *, now: dt.datetime, max_face_age: dt.timedelta) -> SignerEvidence:
    """Refuse evidence that cannot back a reliable signature.

    A customer signature must carry a passed face match against a KYC case, taken within
    ``max_face_age``; staff and platform signatures may omit the face check.
    """
    try:
        ipaddress.ip_address(evidence.ip_address)
    except ValueError:
        raise InvalidInput("ip_address is not an IP address", code="ip_address_invalid") from None
    check_text(evidence.user_agent, "user_agent", max_len=512, required=False)
    check_text(evidence.session_ref, "session_ref", max_len=128, required=False)
    if evidence.shown_sha256 is not None:
        check_sha256(evidence.shown_sha256, "shown_sha256")
    face = (evidence.face_distance, evidence.face_threshold, evidence.face_checked_at)
    if evidence.role == "customer" and (evidence.kyc_case_id is None or any(v is None for v in face)):
        raise InvalidInput("a customer signature needs a KYC case and a fresh face check", code="face_check_missing")
    if evidence.kyc_case_id is not None:
        check_text(evidence.kyc_case_id, "kyc_case_id", max_len=64)
    if evidence.face_distance is not None or evidence.face_threshold is not None:
        distance, threshold, checked_at = face
        if distance is None or threshold is None or checked_at is None:
            raise InvalidInput("face distance, threshold and time go together", code="face_check_incomplete")
        if not (math.isfinite(distance) and math.isfinite(threshold)) or distance < 0 or threshold <= 0:
            raise InvalidInput("face distance and threshold must be finite and positive", code="face_check_invalid")
        if distance > threshold:
            raise InvalidInput("the face check did not match the KYC template", code="face_mismatch")
        if checked_at.tzinfo is None:
            raise InvalidInput("face_checked_at needs a time zone", code="face_check_invalid")
        if checked_at > now + _CLOCK_SKEW or now - checked_at > max_face_age:
            raise InvalidInput("the face check is not fresh enough to sign", code="face_check_stale")
    return evidence
