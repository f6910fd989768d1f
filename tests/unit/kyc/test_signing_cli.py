"""The ``sign`` command group: one JSON object on stdout, exit 0/1/2 as documented."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from pypdf import PdfReader, PdfWriter

from kyc.signing import documents, samples
from kyc.signing.cli import ENV_DIR, sign

EINVOICE = Path(__file__).resolve().parents[4] / "shared" / "fixtures" / "claims" / "einvoice_example.pdf"


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in (
        "BRANCHLESS_SIGNING_TSA_URL",
        "BRANCHLESS_SIGNING_PKCS12",
        "BRANCHLESS_SIGNING_PKCS11_MODULE",
        "BRANCHLESS_SIGNING_TRUST_ROOTS",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(ENV_DIR, str(tmp_path / "keys"))
    return tmp_path


@pytest.fixture
def source(env: Path) -> Path:
    path = env / "in.pdf"
    path.write_bytes(EINVOICE.read_bytes() if EINVOICE.exists() else documents.render_consent(samples.sample_consent()))
    return path


def run(*args: str) -> tuple[int, dict[str, Any]]:
    result = CliRunner().invoke(sign, list(args))
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1, result.stdout  # exactly one JSON object
    return result.exit_code, json.loads(lines[0])


def test_sign_then_verify(source: Path, env: Path) -> None:
    out = env / "out.pdf"
    code, receipt = run("pdf", str(source), str(out), "--signer", "测试 Signer")
    assert code == 0
    assert out.exists()
    assert receipt["level"] == "B-B"
    assert receipt["field_name"] == "BranchlessSig1"
    assert (env / "keys" / "ca.pem").exists()
    code, result = run("verify", str(out))
    assert code == 0
    assert result["valid"] is True
    assert {"valid", "intact", "trusted", "signers"} <= set(result)
    signer = result["signers"][0]
    assert signer["name"] == "测试 Signer"
    assert signer["coverage"] == "ENTIRE_FILE"
    assert signer["intact"]
    assert signer["trusted"]
    assert signer["signing_time"]


def test_second_signer_gets_the_next_box(source: Path, env: Path) -> None:
    once, twice = env / "once.pdf", env / "twice.pdf"
    assert run("pdf", str(source), str(once), "--signer", "客户")[0] == 0
    code, receipt = run("pdf", str(once), str(twice), "--signer", "员工", "--reason", "复核")
    assert code == 0
    assert receipt["field_name"] == "BranchlessSig2"
    code, result = run("verify", str(twice))
    assert code == 0
    assert [s["name"] for s in result["signers"]] == ["客户", "员工"]


def test_flipped_byte_exits_non_zero(source: Path, env: Path) -> None:
    out = env / "out.pdf"
    run("pdf", str(source), str(out), "--signer", "测试 Signer")
    data = bytearray(out.read_bytes())
    index = data.find(b"ReportLab")
    data[index if index > 0 else 200] ^= 1
    bad = env / "bad.pdf"
    bad.write_bytes(bytes(data))
    code, result = run("verify", str(bad))
    assert code == 1
    assert result["valid"] is False
    assert result["intact"] is False


def test_b_t_with_the_local_tsa(source: Path, env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRANCHLESS_SIGNING_TSA_URL", "local")
    out = env / "out.pdf"
    code, receipt = run("pdf", str(source), str(out), "--signer", "测试 Signer")
    assert code == 0
    assert receipt["level"] == "B-T"
    code, result = run("verify", str(out))
    assert code == 0
    assert result["signers"][0]["timestamp"]


def _encrypted(path: Path) -> None:
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(path.read_bytes())))
    writer.encrypt(user_password="", owner_password="o", algorithm="AES-256")
    with path.open("wb") as fh:
        writer.write(fh)


@pytest.mark.parametrize(
    ("make", "code"),
    [
        (lambda p: p.write_bytes(b"hello"), "not_pdf"),
        (lambda p: p.write_bytes(b"%PDF-1.4\ngarbage\n"), "malformed_pdf"),
        (_encrypted, "encrypted_pdf"),
        (lambda p: p.unlink(), "io_error"),
    ],
)
def test_refusals_are_json_with_exit_2(make: Any, code: str, source: Path, env: Path) -> None:
    make(source)
    for args in (("pdf", str(source), str(env / "o.pdf"), "--signer", "x"), ("verify", str(source))):
        status, error = run(*args)
        assert status == 2
        assert error["error"] == code
        assert error["message"]
    assert not (env / "o.pdf").exists()


def test_unsigned_pdf_does_not_verify(source: Path) -> None:
    code, result = run("verify", str(source))
    assert code == 1
    assert result["valid"] is False
    assert result["signers"] == []
