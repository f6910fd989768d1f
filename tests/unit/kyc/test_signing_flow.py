"""End to end: generate each document, sign as customer then staff, verify with pyHanko and pdfsig."""

from __future__ import annotations

import hashlib
import io
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pypdf import PdfReader

from kyc.signing import audit_trail, documents, samples, service
from kyc.signing.keys import DevKeyConfig, ensure_dev_pki, trust_roots
from kyc.signing.models import EvidenceRecord

PDFSIG = shutil.which("pdfsig")
DOCS: dict[str, Callable[[], bytes]] = {
    "consent": lambda: documents.render_consent(samples.sample_consent()),
    "contract": lambda: documents.render_loan_contract(samples.sample_loan_contract()),
    "claim": lambda: documents.render_claim_form(samples.sample_claim_form()),
}
STAFF_ROLE = {"consent": "account_manager", "contract": "account_manager", "claim": "insurer"}


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def key(tmp_path_factory: pytest.TempPathFactory) -> DevKeyConfig:
    directory = tmp_path_factory.mktemp("signing")
    ensure_dev_pki(directory)
    return DevKeyConfig(directory)


@pytest.fixture(scope="module")
def roots(key: DevKeyConfig) -> list[bytes]:
    return trust_roots(key)


@pytest.fixture(scope="module")
def signed_docs(key: DevKeyConfig) -> dict[str, tuple[bytes, bytes, bytes]]:
    """(original, after the customer, after customer and staff) for each document kind."""
    out = {}
    for kind, render in DOCS.items():
        doc = render()
        first = service.sign(
            doc,
            signer_name="张晓明",
            reason="本人已阅读并同意 I agree",
            location="上海",
            evidence=samples.customer_evidence(sha(doc)),
            key=key,
        )
        second = service.sign(
            first,
            signer_name="李经理 Li",
            reason="审核确认 Reviewed",
            location="上海分行",
            evidence=samples.staff_evidence(STAFF_ROLE[kind], sha(first)),
            key=key,
        )
        out[kind] = (doc, first, second)
    return out


def pdfsig(path: Path) -> str:
    assert PDFSIG is not None, "poppler-utils (pdfsig) is part of the project's set-up"
    return subprocess.run([PDFSIG, str(path)], capture_output=True, text=True, timeout=60, check=False).stdout


@pytest.mark.parametrize("kind", list(DOCS))
def test_customer_then_staff_both_verify(
    kind: str, signed_docs: dict[str, tuple[bytes, bytes, bytes]], roots: list[bytes], tmp_path: Path
) -> None:
    doc, first, second = signed_docs[kind]
    result = service.verify(second, roots)
    assert result.valid, result.problems
    assert result.intact
    assert result.trusted
    assert result.covers_whole_file
    assert result.original_sha256 == sha(doc)  # re-computed from the file's leading bytes
    assert [s.name for s in result.signers] == ["张晓明", "李经理 Li"]
    assert [s.coverage for s in result.signers] == ["ENTIRE_REVISION", "ENTIRE_FILE"]
    assert result.signers[0].modification_level == "FORM_FILLING"  # the staff signature: an allowed change
    assert all(s.ok and s.level == "B-B" and s.timestamp is None and s.signing_time for s in result.signers)
    assert result.signers[0].reason == "本人已阅读并同意 I agree"
    # Incremental all the way: the original is byte-for-byte the first revision, the first signed file the second.
    assert second.startswith(first)
    assert first.startswith(doc)

    path = tmp_path / f"{kind}.pdf"
    path.write_bytes(second)
    report = pdfsig(path)
    assert report.count("Signature is Valid") == 2, report
    assert "Total document signed" in report


def test_first_signature_alone_verifies(signed_docs: dict[str, tuple[bytes, bytes, bytes]], roots: list[bytes]) -> None:
    result = service.verify(signed_docs["consent"][1], roots)
    assert result.valid
    assert [s.coverage for s in result.signers] == ["ENTIRE_FILE"]


def test_audit_trail_page_is_added_once(signed_docs: dict[str, tuple[bytes, bytes, bytes]]) -> None:
    doc, _, second = signed_docs["contract"]
    original_pages = len(PdfReader(io.BytesIO(doc)).pages)
    reader = PdfReader(io.BytesIO(second))
    assert len(reader.pages) == original_pages + 1
    text = reader.pages[-1].extract_text()
    assert "签署审计记录" in text
    assert sha(doc) in text
    widgets = [a.get_object() for a in reader.pages[-1]["/Annots"]]
    assert sorted(w["/T"] for w in widgets) == ["BranchlessSig1", "BranchlessSig2"]
    assert all("/N" in w["/AP"] for w in widgets)


def test_slot_appearance_carries_the_evidence() -> None:
    evidence = samples.customer_evidence("a" * 64)
    entry = audit_trail.SlotEntry(
        slot=0,
        signer_name="张晓明",
        signed_at=evidence.face_checked_at,
        reason="同意",
        location="上海",  # type: ignore[arg-type]
        certificate_subject="Dev",
        shown_sha256="a" * 64,
        prior_sha256="b" * 64,
        evidence_digest="c" * 64,
        timestamped=False,
        evidence=evidence,
    )
    text = documents.extract_text(audit_trail.render_slot_appearance(entry))
    for expected in ("张晓明", "203.0.113.25", "KYC-2026-001122", "0.3124", "a" * 64, "b" * 64, "c" * 64, "iPhone"):
        assert expected in text


def test_receipt_digest_matches_the_evidence_record(key: DevKeyConfig) -> None:
    doc = DOCS["consent"]()
    evidence = samples.customer_evidence(sha(doc))
    receipt = service.sign_with_receipt(doc, signer_name="张晓明", reason="同意", evidence=evidence, key=key)
    record = EvidenceRecord(receipt.field_name, "张晓明", "同意", "", receipt.signed_at, sha(doc), sha(doc), evidence)
    assert receipt.evidence_digest == service.evidence_digest(record)
    assert receipt.prior_sha256 == sha(doc)
    assert receipt.signed_sha256 == sha(receipt.pdf)
    assert receipt.level == "B-B"
    assert receipt.field_name == "BranchlessSig1"


@pytest.mark.parametrize("where", ["first revision", "second revision"])
def test_flipped_byte_in_signed_range_is_caught(
    where: str, signed_docs: dict[str, tuple[bytes, bytes, bytes]], roots: list[bytes], tmp_path: Path
) -> None:
    doc, _first, second = signed_docs["claim"]
    data = bytearray(second)
    # A byte of the document's info string (first revision) or of the trail page's resources (second).
    index = data.find(b"ReportLab") if where == "first revision" else data.find(b"/BaseFont", len(doc))
    assert index > 0
    data[index + 2] ^= 0x01
    result = service.verify(bytes(data), roots)
    assert not result.valid
    assert not result.intact
    broken = [s for s in result.signers if not s.intact]
    assert broken
    assert all("altered" in " ".join(s.problems) for s in broken)
    path = tmp_path / "tampered.pdf"
    path.write_bytes(bytes(data))
    assert "Signature is Valid" not in pdfsig(path).split("Signature #2")[0 if where == "first revision" else 1]


def test_appended_junk_is_not_covered(signed_docs: dict[str, tuple[bytes, bytes, bytes]], roots: list[bytes]) -> None:
    result = service.verify(signed_docs["consent"][2] + b"\n%junk after the last signature\n", roots)
    assert result.intact
    assert result.trusted
    assert not result.covers_whole_file
    assert not result.valid
    assert any("after the last signature" in p for p in result.problems)


def _incremental_info_change(pdf: bytes) -> bytes:
    writer = IncrementalPdfFileWriter(io.BytesIO(pdf))
    info = writer.trailer["/Info"]
    info[generic.NameObject("/Title")] = generic.TextStringObject("changed after signing")
    writer.update_container(info)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def _incremental_new_page(pdf: bytes) -> bytes:
    writer = IncrementalPdfFileWriter(io.BytesIO(pdf))
    content = writer.add_object(generic.StreamObject(stream_data=b"BT /F1 12 Tf 72 700 Td (forged) Tj ET"))
    writer.insert_page(
        generic.DictionaryObject(
            {
                generic.NameObject("/Type"): generic.NameObject("/Page"),
                generic.NameObject("/MediaBox"): generic.ArrayObject(
                    [generic.NumberObject(v) for v in (0, 0, 595, 842)]
                ),
                generic.NameObject("/Resources"): generic.DictionaryObject(),
                generic.NameObject("/Contents"): content,
            }
        )
    )
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


@pytest.mark.parametrize(("edit", "permitted"), [(_incremental_info_change, True), (_incremental_new_page, False)])
def test_incremental_edit_after_signing_is_reported(
    edit: Callable[[bytes], bytes],
    permitted: bool,
    signed_docs: dict[str, tuple[bytes, bytes, bytes]],
    roots: list[bytes],
) -> None:
    result = service.verify(edit(signed_docs["contract"][2]), roots)
    assert result.intact
    assert not result.covers_whole_file
    assert not result.valid
    last = result.signers[-1]
    assert last.coverage == "ENTIRE_REVISION"
    assert last.modifications_permitted is permitted
