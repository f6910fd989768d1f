"""Bad input is refused with a clear error and a machine-readable code, before any key is touched."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.sign import signers
from pypdf import PdfReader, PdfWriter

from kyc.signing import documents, errors, samples, service
from kyc.signing.keys import DevKeyConfig, ensure_dev_pki, open_signer, trust_roots
from kyc.signing.models import InputLimits, SignOptions


@pytest.fixture(scope="module")
def key(tmp_path_factory: pytest.TempPathFactory) -> DevKeyConfig:
    directory = tmp_path_factory.mktemp("signing")
    ensure_dev_pki(directory)
    return DevKeyConfig(directory)


@pytest.fixture(scope="module")
def consent() -> bytes:
    return documents.render_consent(samples.sample_consent())


def _encrypted(pdf: bytes) -> bytes:
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(pdf)))
    writer.encrypt(user_password="", owner_password="owner-secret", algorithm="AES-256")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def _two_pages(pdf: bytes) -> bytes:
    return documents.assemble([pdf, pdf])


@pytest.mark.parametrize(
    ("make", "limits", "error", "code"),
    [
        (lambda pdf: b"\x89PNG\r\n\x1a\n" + b"\0" * 64, InputLimits(), errors.NotAPdf, "not_pdf"),
        (lambda pdf: b"", InputLimits(), errors.NotAPdf, "not_pdf"),
        (
            lambda pdf: b"%PDF-1.7\n1 0 obj << /Type /Catalog >>\n%%EOF\n",
            InputLimits(),
            errors.MalformedPdf,
            "malformed_pdf",
        ),
        (lambda pdf: pdf[: len(pdf) // 2], InputLimits(), errors.MalformedPdf, "malformed_pdf"),
        (_encrypted, InputLimits(), errors.EncryptedPdf, "encrypted_pdf"),
        (lambda pdf: pdf, InputLimits(max_bytes=10_000), errors.PdfTooLarge, "pdf_too_large"),
        (_two_pages, InputLimits(max_pages=1), errors.TooManyPages, "too_many_pages"),
    ],
    ids=["png", "empty", "no-xref", "truncated", "encrypted", "oversized", "too-many-pages"],
)
def test_unusable_pdfs_are_refused(
    make,
    limits: InputLimits,
    error: type[errors.InvalidPdf],
    code: str,  # type: ignore[no-untyped-def]
    consent: bytes,
    key: DevKeyConfig,
) -> None:
    bad = make(consent)
    with pytest.raises(error) as refused:
        service.sign(bad, signer_name="张晓明", reason="同意", key=key, options=SignOptions(limits=limits))
    assert refused.value.code == code
    assert refused.value.as_dict()["error"] == code
    with pytest.raises(error):
        service.verify(bad, trust_roots(key), limits)


def test_default_size_limit_is_20_mb() -> None:
    assert InputLimits().max_bytes == 20 * 1024 * 1024


def _sign_as_customer(pdf: bytes, key: DevKeyConfig, **changes: object) -> bytes:
    evidence = samples.customer_evidence(hashlib.sha256(pdf).hexdigest())
    import msgspec

    return service.sign(
        pdf, signer_name="张晓明", reason="同意", key=key, evidence=msgspec.structs.replace(evidence, **changes)
    )


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"face_checked_at": dt.datetime.now(dt.UTC) - dt.timedelta(minutes=30)}, "face_check_stale"),
        ({"face_checked_at": dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5)}, "face_check_stale"),
        ({"face_distance": 0.55}, "face_mismatch"),
        ({"face_distance": float("nan")}, "face_check_invalid"),
        ({"face_distance": None, "face_threshold": None, "face_checked_at": None}, "face_check_missing"),
        ({"kyc_case_id": None}, "face_check_missing"),
        ({"ip_address": "not-an-ip"}, "ip_address_invalid"),
        ({"user_agent": "bad\x00agent"}, "user_agent_invalid"),
    ],
)
def test_customer_evidence_must_back_the_signature(
    changes: dict[str, object], code: str, consent: bytes, key: DevKeyConfig
) -> None:
    with pytest.raises(errors.InvalidInput) as refused:
        _sign_as_customer(consent, key, **changes)
    assert refused.value.code == code


def test_document_other_than_shown_is_refused(consent: bytes, key: DevKeyConfig) -> None:
    with pytest.raises(errors.DocumentChanged) as refused:
        _sign_as_customer(consent, key, shown_sha256="0" * 64)
    assert refused.value.code == "document_changed"


@pytest.mark.parametrize(
    ("name", "reason", "code"),
    [
        ("", "同意", "signer_name_missing"),
        ("张\x07三", "同意", "signer_name_invalid"),
        ("张三", "x" * 201, "reason_too_long"),
    ],
)
def test_signer_text_is_checked(name: str, reason: str, code: str, consent: bytes, key: DevKeyConfig) -> None:
    with pytest.raises(errors.InvalidInput) as refused:
        service.sign(consent, signer_name=name, reason=reason, key=key)
    assert refused.value.code == code


def test_foreign_signed_pdf_is_refused(consent: bytes, key: DevKeyConfig) -> None:
    # Signed by someone else, without our audit-trail page: adding the page would break their signature.
    meta = signers.PdfSignatureMetadata(field_name="Elsewhere")
    foreign = signers.sign_pdf(IncrementalPdfFileWriter(io.BytesIO(consent)), meta, signer=open_signer(key)).getvalue()
    with pytest.raises(errors.ForeignSignatures) as refused:
        service.sign(foreign, signer_name="张晓明", reason="同意", key=key)
    assert refused.value.code == "foreign_signatures"


def test_audit_trail_holds_four_signers(consent: bytes, key: DevKeyConfig) -> None:
    pdf = consent
    for n in range(4):
        pdf = service.sign(pdf, signer_name=f"签署人 {n + 1}", reason="同意", key=key)
    result = service.verify(pdf, trust_roots(key))
    assert result.valid
    assert len(result.signers) == 4
    with pytest.raises(errors.InvalidInput) as refused:
        service.sign(pdf, signer_name="第五人", reason="同意", key=key)
    assert refused.value.code == "too_many_signers"


def test_unsigned_pdf_is_not_valid(consent: bytes, key: DevKeyConfig) -> None:
    result = service.verify(consent, trust_roots(key))
    assert not result.valid
    assert result.signers == []
    assert "no signatures" in result.problems[0]


def test_untrusted_when_root_is_not_configured(consent: bytes, key: DevKeyConfig) -> None:
    signed = service.sign(consent, signer_name="张晓明", reason="同意", key=key)
    result = service.verify(signed, [])
    assert result.intact
    assert not result.trusted
    assert not result.valid
    assert "trusted root" in result.problems[0]


@pytest.mark.parametrize("damage", ["flip", "junk"])
def test_countersigning_a_broken_document_is_refused(damage: str, consent: bytes, key: DevKeyConfig) -> None:
    signed = bytearray(service.sign(consent, signer_name="张晓明", reason="同意", key=key))
    if damage == "flip":
        signed[signed.find(b"ReportLab") + 1] ^= 0x01
    else:
        signed += b"\n%unsigned trailing bytes\n"
    with pytest.raises(errors.BrokenSignatures) as refused:
        service.sign(bytes(signed), signer_name="李经理", reason="复核", key=key)
    assert refused.value.code == "existing_signatures_invalid"


class _Pdf:
    """Holds the bytes with a short repr (hypothesis prints the arguments of failing examples)."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def __repr__(self) -> str:
        return f"<PDF, {len(self.data)} bytes>"


@pytest.fixture(scope="module")
def countersigned(consent: bytes, key: DevKeyConfig) -> _Pdf:
    once = service.sign(consent, signer_name="张晓明", reason="同意", key=key)
    return _Pdf(service.sign(once, signer_name="李经理", reason="复核", key=key))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(edits=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), min_size=1, max_size=4))
def test_random_damage_is_never_valid_and_never_crashes(
    edits: list[tuple[float, int]], countersigned: _Pdf, key: DevKeyConfig
) -> None:
    data = bytearray(countersigned.data)
    for where, value in edits:
        data[int(where * len(data))] = value
    try:
        result = service.verify(bytes(data), trust_roots(key))
    except errors.InvalidPdf:
        return  # refused as damaged: also a detection
    # The only harmless edit: whitespace inside a signature's hex /Contents, which the PDF syntax
    # ignores (those bytes are outside every byte range by design) -- the decoded file is unchanged.
    gaps = [
        range(int(m[1]) + int(m[2]), int(m[3])) for m in re.finditer(rb"/ByteRange \[(\d+) (\d+) (\d+) \d+\]", data)
    ]
    changed = [i for i, (a, b) in enumerate(zip(data, countersigned.data, strict=True)) if a != b]
    harmless = all(any(i in gap for gap in gaps) and data[i] in b" \t\r\n\x0c" for i in changed)
    assert harmless or not result.valid


def test_data_hidden_in_signature_padding_is_flagged(countersigned: _Pdf, key: DevKeyConfig) -> None:
    data = bytearray(countersigned.data)
    start = data.rfind(b"/Contents <") + len(b"/Contents <")
    end = data.index(b">", start)
    padding = start + len(data[start:end].rstrip(b"0")) + 64
    data[padding] = ord("a")  # outside every signed byte range, after the CMS structure
    result = service.verify(bytes(data), trust_roots(key))
    assert not result.valid
    assert any("unexpected data" in p for p in result.problems)
