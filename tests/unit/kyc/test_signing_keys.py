"""Key material (development PKI, PKCS#12, PKCS#11 gate) and timestamping (B-T vs B-B)."""

from __future__ import annotations

import datetime as dt
import pickle
import shutil
import socket
import stat
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from kyc.signing import documents, errors, keys, samples, service
from kyc.signing.keys import DevKeyConfig, Pkcs11KeyConfig, Pkcs12KeyConfig, ensure_dev_pki, trust_roots
from kyc.signing.tsa import HttpTsaConfig, LocalTsaConfig, LocalTsaServer


@pytest.fixture(scope="module")
def key(tmp_path_factory: pytest.TempPathFactory) -> DevKeyConfig:
    directory = tmp_path_factory.mktemp("signing")
    ensure_dev_pki(directory)
    return DevKeyConfig(directory)


@pytest.fixture(scope="module")
def consent() -> bytes:
    return documents.render_consent(samples.sample_consent())


def test_dev_pki_is_created_once_with_private_permissions(tmp_path: Path) -> None:
    directory = tmp_path / "var" / "signing"
    pki = ensure_dev_pki(directory)
    assert pki.complete()
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    for name in ("signing.p12", "signing.pass", "tsa.p12", "tsa.pass"):
        assert stat.S_IMODE((directory / name).stat().st_mode) == 0o600, name
    ca_before = pki.ca_cert.read_bytes()
    ensure_dev_pki(directory)
    assert pki.ca_cert.read_bytes() == ca_before  # not re-minted


def test_dev_certificates_fit_their_purpose(key: DevKeyConfig) -> None:
    info = keys.certificate_info(key)
    assert "Branchless Platform Signing" in info.subject
    assert "Development CA" in info.issuer
    assert info.not_after > dt.datetime.now(dt.UTC) + dt.timedelta(days=700)
    tsa_cert, _tsa_key, ca = keys.dev_tsa_material(key.directory)
    assert tsa_cert.extended_key_usage_value.native == ["time_stamping"]
    assert ca.ca
    assert tsa_cert.public_key.algorithm == "rsa"


def test_secrets_stay_out_of_reprs() -> None:
    p12 = Pkcs12KeyConfig(Path("/k.p12"), b"hunter2-passphrase")
    p11 = Pkcs11KeyConfig(Path("/lib/softhsm2.so"), "token", "key", pin="4321-pin")
    assert "hunter2" not in repr(p12)
    assert "4321" not in repr(p11)
    assert pickle.loads(pickle.dumps(p12)) == p12  # configs cross into worker processes


def _pkcs12_with_own_root(tmp_path: Path, passphrase: bytes) -> tuple[Path, bytes]:
    root_key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test Bank Root")])
    now = dt.datetime.now(dt.UTC)
    root = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(root_key.public_key())
        .serial_number(1)
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(root_key, hashes.SHA256())
    )
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "银行签章 Bank seal")]))
        .issuer_name(name)
        .public_key(leaf_key.public_key())
        .serial_number(2)
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.KeyUsage(True, True, False, False, False, False, False, False, False), critical=True)
        .sign(root_key, hashes.SHA256())
    )
    path = tmp_path / "bank.p12"
    path.write_bytes(
        pkcs12.serialize_key_and_certificates(
            b"bank", leaf_key, leaf, [root], serialization.BestAvailableEncryption(passphrase)
        )
    )
    return path, root.public_bytes(serialization.Encoding.PEM)


def test_pkcs12_key_signs_and_verifies_with_its_root(tmp_path: Path, consent: bytes) -> None:
    path, root_pem = _pkcs12_with_own_root(tmp_path, b"p12-pass")
    config = Pkcs12KeyConfig(path, b"p12-pass")
    signed = service.sign(consent, signer_name="张晓明", reason="同意", key=config)
    result = service.verify(signed, [root_pem])
    assert result.valid
    assert result.signers[0].certificate_subject.endswith("银行签章 Bank seal")
    assert trust_roots(config) == []  # only the dev PKI is trusted implicitly


def test_wrong_pkcs12_passphrase_names_no_secret(tmp_path: Path, consent: bytes) -> None:
    path, _ = _pkcs12_with_own_root(tmp_path, b"right-one")
    with pytest.raises(errors.KeyConfigError) as refused:
        service.sign(consent, signer_name="张晓明", reason="同意", key=Pkcs12KeyConfig(path, b"wrong-one"))
    assert "wrong-one" not in refused.value.message
    assert "right-one" not in refused.value.message


def test_b_b_without_a_tsa(consent: bytes, key: DevKeyConfig) -> None:
    receipt = service.sign_with_receipt(consent, signer_name="张晓明", reason="同意", key=key)
    assert receipt.level == "B-B"
    report = service.verify(receipt.pdf, trust_roots(key)).signers[0]
    assert report.level == "B-B"
    assert report.timestamp is None


def _check_b_t(signed: bytes, key: DevKeyConfig, tmp_path: Path) -> None:
    result = service.verify(signed, trust_roots(key))
    report = result.signers[0]
    assert result.valid
    assert report.level == "B-T"
    assert report.timestamp is not None
    assert report.signing_time
    assert abs(report.timestamp - report.signing_time) < dt.timedelta(seconds=30)
    path = tmp_path / "b-t.pdf"
    path.write_bytes(signed)
    pdfsig = shutil.which("pdfsig")
    assert pdfsig is not None
    out = subprocess.run([pdfsig, str(path)], capture_output=True, text=True, timeout=60, check=False).stdout
    assert "Signature is Valid" in out


def test_b_t_with_in_process_tsa(consent: bytes, key: DevKeyConfig, tmp_path: Path) -> None:
    receipt = service.sign_with_receipt(
        consent, signer_name="张晓明", reason="同意", key=key, tsa=LocalTsaConfig(key.directory)
    )
    assert receipt.level == "B-T"
    _check_b_t(receipt.pdf, key, tmp_path)


def test_b_t_with_local_http_tsa(consent: bytes, key: DevKeyConfig, tmp_path: Path) -> None:
    with LocalTsaServer(key.directory) as tsa:
        assert tsa.url.startswith("http://127.0.0.1:")
        signed = service.sign(consent, signer_name="张晓明", reason="同意", key=key, tsa=HttpTsaConfig(tsa.url))
    _check_b_t(signed, key, tmp_path)


def test_unreachable_tsa_is_reported(consent: bytes, key: DevKeyConfig) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again when the block ends: nothing listens there
    with pytest.raises(errors.TimestampError) as refused:
        service.sign(
            consent,
            signer_name="张晓明",
            reason="同意",
            key=key,
            tsa=HttpTsaConfig(f"http://127.0.0.1:{port}/", timeout=2),
        )
    assert refused.value.code == "timestamp_unavailable"


def test_tsa_url_must_be_http(consent: bytes, key: DevKeyConfig) -> None:
    with pytest.raises(errors.TimestampError) as refused:
        service.sign(consent, signer_name="x", reason="y", key=key, tsa=HttpTsaConfig("file:///etc/passwd"))
    assert refused.value.code == "tsa_config"


def test_results_pickle_for_the_process_pool(consent: bytes, key: DevKeyConfig) -> None:
    signed = service.sign(
        consent,
        signer_name="张晓明",
        reason="同意",
        key=key,
        evidence=pickle.loads(pickle.dumps(samples.customer_evidence())),
    )
    result = service.verify(signed, trust_roots(key))
    assert pickle.loads(pickle.dumps(result)) == result


def test_bad_trust_root_is_a_configuration_error(consent: bytes, key: DevKeyConfig) -> None:
    signed = service.sign(consent, signer_name="张晓明", reason="同意", key=key)
    with pytest.raises(errors.KeyConfigError) as refused:
        service.verify(signed, [b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"])
    assert refused.value.code == "key_config"
