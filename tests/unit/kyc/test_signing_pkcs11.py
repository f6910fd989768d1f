"""Signing with a key held on a PKCS#11 token: a fresh SoftHSM2 token per test module.

The fixture plays the operator: it initialises a token in a temporary directory (its own
``SOFTHSM2_CONF`` and token directory), generates an EC P-256 key *on* the token (sensitive, not
extractable), issues its certificate from a test CA and stores the certificate on the token beside
the key; it also imports an RSA-2048 key with ``softhsm2-util --import`` whose certificate stays
in a file. The tests then go through the application's own entry points (``service``, the CLI).

Needs Debian's ``softhsm2`` (``make system-test-deps``) and poppler's ``pdfsig``.

A PKCS#11 library reads its configuration once per process, when first loaded: this module's
token is the one SoftHSM2 serves for the rest of the pytest process.
"""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import json
import logging
import multiprocessing
import pickle
import shutil
import subprocess
import sys
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pkcs11
import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from pkcs11 import Attribute, KeyType, ObjectClass
from pkcs11.util.ec import encode_ec_public_key, encode_named_curve_parameters
from pkcs11.util.x509 import decode_x509_certificate

from kyc.signing import cli, documents, errors, keys, samples, service
from kyc.signing import pkcs11 as token_signing
from kyc.signing.keys import DevKeyConfig, Pkcs11KeyConfig, ensure_dev_pki, trust_roots
from kyc.signing.tsa import LocalTsaConfig

SOFTHSM_MODULE = next(
    (
        Path(p)
        for p in ("/usr/lib/softhsm/libsofthsm2.so", "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so")
        if Path(p).is_file()
    ),
    None,
)
SOFTHSM_UTIL = shutil.which("softhsm2-util")
PDFSIG = shutil.which("pdfsig")

TOKEN = "branchless-test"
PIN = "pin-4711-8152"  # distinctive, so a leak into any message or log line is found by search
SO_PIN = "so-pin-9090-1212"
EC_LABEL = "platform-signing"
RSA_LABEL = "imported-rsa"


@dataclass(frozen=True)
class Hsm:
    directory: Path
    module: Path
    ca_pem: bytes
    rsa_cert: Path
    stranger_ec_cert: Path
    """A certificate for an EC key that is not on the token."""

    def config(self, key_label: str = EC_LABEL, **changes: object) -> Pkcs11KeyConfig:
        fields: dict[str, object] = {
            "module_path": self.module,
            "token_label": TOKEN,
            "key_label": key_label,
            "pin": PIN,
        }
        fields.update(changes)
        return Pkcs11KeyConfig(**fields)  # type: ignore[arg-type]


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Branchless (test HSM)"),
        ]
    )


def _test_ca() -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("Branchless HSM Test CA"))
        .issuer_name(_name("Branchless HSM Test CA"))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _issue(
    ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate], public_key: object, common_name: str
) -> x509.Certificate:
    ca_key, ca_cert = ca
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca_cert.subject)
        .public_key(public_key)  # type: ignore[arg-type]
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        # digital signature + non-repudiation, as the development signing certificate has
        .add_extension(x509.KeyUsage(True, True, False, False, False, False, False, False, False), critical=True)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


@pytest.fixture(scope="module")
def hsm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hsm]:
    assert SOFTHSM_MODULE is not None, "Debian's softhsm2 is part of the project's test set-up (make system-test-deps)"
    assert SOFTHSM_UTIL is not None, "softhsm2-util comes with Debian's softhsm2"
    base = tmp_path_factory.mktemp("softhsm")
    (base / "tokens").mkdir(mode=0o700)
    conf = base / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {base / 'tokens'}\n"
        "objectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n"
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SOFTHSM2_CONF", str(conf))  # inherited by softhsm2-util and by worker processes

        def util(*args: str) -> None:
            subprocess.run([SOFTHSM_UTIL, *args], check=True, capture_output=True, timeout=60)

        util("--init-token", "--free", "--label", TOKEN, "--pin", PIN, "--so-pin", SO_PIN)
        ca = _test_ca()

        # An existing RSA key brought onto the token (as when moving a PKCS#12 key into an HSM);
        # its certificate is handed to the signer as a file.
        rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        key_file = base / "rsa-key.pem"
        key_file.write_bytes(
            rsa_key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        util("--import", str(key_file), "--token", TOKEN, "--label", RSA_LABEL, "--id", "02", "--pin", PIN)
        key_file.unlink()
        rsa_cert = base / "rsa-cert.pem"
        rsa_cert.write_bytes(_pem(_issue(ca, rsa_key.public_key(), "Branchless HSM RSA Seal")))

        stranger = base / "stranger-ec.pem"
        stranger.write_bytes(_pem(_issue(ca, ec.generate_private_key(ec.SECP256R1()).public_key(), "Not On Token")))

        # The platform key: generated on the token, never extractable; its certificate goes beside it.
        token = pkcs11.lib(str(SOFTHSM_MODULE)).get_token(token_label=TOKEN)
        with token.open(rw=True, user_pin=PIN) as session:
            params = session.create_domain_parameters(
                KeyType.EC, {Attribute.EC_PARAMS: encode_named_curve_parameters("secp256r1")}, local=True
            )
            public, _private = params.generate_keypair(
                store=True,
                label=EC_LABEL,
                id=b"\x01",
                private_template={Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: False},
            )
            spki = serialization.load_der_public_key(encode_ec_public_key(public))
            ec_cert = _issue(ca, spki, "Branchless Platform Signing (HSM)")
            session.create_object(
                {
                    **decode_x509_certificate(ec_cert.public_bytes(serialization.Encoding.DER)),
                    Attribute.TOKEN: True,
                    Attribute.LABEL: EC_LABEL,
                    Attribute.ID: b"\x01",
                }
            )
        yield Hsm(base, SOFTHSM_MODULE, _pem(ca[1]), rsa_cert, stranger)
        token_signing.close_all()


@pytest.fixture(scope="module")
def consent() -> bytes:
    return documents.render_consent(samples.sample_consent())


def _pdfsig(path: Path) -> str:
    assert PDFSIG is not None, "poppler-utils (pdfsig) is part of the project's set-up"
    return subprocess.run([PDFSIG, str(path)], capture_output=True, text=True, timeout=60, check=False).stdout


def _refused(config: Pkcs11KeyConfig, consent: bytes) -> errors.KeyConfigError:
    with pytest.raises(errors.KeyConfigError) as refused:
        service.sign_with_receipt(consent, signer_name="张晓明", reason="同意", key=config)
    exc = refused.value
    shown = "".join(traceback.format_exception(exc))
    assert PIN not in shown
    assert PIN not in json.dumps(exc.as_dict())
    return exc


# --------------------------------------------------------------------------- signing


def test_key_generated_on_the_token_signs_verifies_and_passes_pdfsig(hsm: Hsm, consent: bytes, tmp_path: Path) -> None:
    config = hsm.config()
    receipt = service.sign_with_receipt(consent, signer_name="张晓明", reason="本人同意", key=config)
    assert receipt.level == "B-B"
    result = service.verify(receipt.pdf, [hsm.ca_pem])
    assert result.valid
    assert result.intact
    assert result.trusted
    assert result.covers_whole_file
    assert result.signers[0].certificate_subject.endswith("Branchless Platform Signing (HSM)")
    assert not service.verify(receipt.pdf, []).trusted  # trust comes from the CA, nothing implicit
    path = tmp_path / "hsm-signed.pdf"
    path.write_bytes(receipt.pdf)
    assert "Signature is Valid" in _pdfsig(path)

    # The same open session countersigns: both signatures stay valid.
    second = service.sign(receipt.pdf, signer_name="李经理 Li", reason="审核确认", key=config)
    both = service.verify(second, [hsm.ca_pem])
    assert both.valid
    assert [s.ok for s in both.signers] == [True, True]
    path.write_bytes(second)
    assert _pdfsig(path).count("Signature is Valid") == 2

    info = keys.certificate_info(config)
    assert info.issuer.endswith("Branchless HSM Test CA")
    signer = keys.open_signer(config)
    assert PIN not in repr(signer)
    assert PIN not in repr(vars(signer))  # nor in the shared session it holds


def test_the_private_key_never_leaves_the_token(hsm: Hsm) -> None:
    token = pkcs11.lib(str(hsm.module)).get_token(token_label=TOKEN)
    token_signing.close_all()  # log the application out, so this session logs in by itself
    with token.open(user_pin=PIN) as session:
        key = session.get_key(ObjectClass.PRIVATE_KEY, label=EC_LABEL)
        assert key[Attribute.SENSITIVE]
        assert not key[Attribute.EXTRACTABLE]
        with pytest.raises(pkcs11.PKCS11Error):
            key[Attribute.VALUE]


def test_imported_rsa_key_with_certificate_from_a_file_and_a_timestamp(
    hsm: Hsm, consent: bytes, tmp_path: Path
) -> None:
    dev = tmp_path / "dev-pki"  # only for the in-process TSA, whose certificate chains to the dev CA
    ensure_dev_pki(dev)
    config = hsm.config(RSA_LABEL, cert_path=hsm.rsa_cert)
    receipt = service.sign_with_receipt(
        consent, signer_name="张晓明", reason="同意", key=config, tsa=LocalTsaConfig(dev)
    )
    assert receipt.level == "B-T"
    result = service.verify(receipt.pdf, [hsm.ca_pem, *trust_roots(DevKeyConfig(dev))])
    assert result.valid
    assert result.signers[0].level == "B-T"
    assert result.signers[0].certificate_subject.endswith("Branchless HSM RSA Seal")
    path = tmp_path / "rsa.pdf"
    path.write_bytes(receipt.pdf)
    assert "Signature is Valid" in _pdfsig(path)


def test_config_holds_no_key_material_and_signs_in_a_worker_process(hsm: Hsm, consent: bytes) -> None:
    config = hsm.config()
    assert PIN not in repr(config)
    assert pickle.loads(pickle.dumps(config)) == config
    # A spawned process starts clean, loads the module and logs in itself (the app uses forkserver).
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        receipt = pool.submit(
            service.sign_with_receipt, consent, signer_name="张晓明", reason="同意", key=config
        ).result(timeout=120)
    assert service.verify(receipt.pdf, [hsm.ca_pem]).valid


def test_cli_signs_with_the_token_from_environment_settings(
    hsm: Hsm, consent: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pin_file = tmp_path / "pin"
    pin_file.write_text(PIN + "\n")
    source, out = tmp_path / "in.pdf", tmp_path / "out.pdf"
    source.write_bytes(consent)
    monkeypatch.delenv("BRANCHLESS_SIGNING_TSA_URL", raising=False)
    env = {
        "BRANCHLESS_SIGNING_PKCS11_MODULE": str(hsm.module),
        "BRANCHLESS_SIGNING_PKCS11_TOKEN": TOKEN,
        "BRANCHLESS_SIGNING_PKCS11_KEY": EC_LABEL,
        "BRANCHLESS_SIGNING_PKCS11_PIN_FILE": str(pin_file),
    }
    assert cli.key_config(env) == hsm.config()
    result = CliRunner().invoke(cli.sign, ["pdf", str(source), str(out), "--signer", "张晓明"], env=env)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["level"] == "B-B"
    assert service.verify(out.read_bytes(), [hsm.ca_pem]).valid

    pin_file.write_text("0000\n")
    token_signing.close_all()  # each CLI run is a new process: nothing is logged in yet
    result = CliRunner().invoke(cli.sign, ["pdf", str(source), str(out), "--signer", "张晓明"], env=env)
    assert result.exit_code == 2  # refused configuration, not a crash
    assert json.loads(result.stdout)["error"] == "pkcs11_pin_incorrect"
    assert "Traceback" not in result.output


# --------------------------------------------------------------------------- refusals


def test_wrong_pin_is_a_clear_error_that_never_shows_the_pin(
    hsm: Hsm, consent: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    token_signing.close_all()  # the token is not yet open in this process, as after a start
    wrong = hsm.config(pin="pin-0000-0000")
    refused = _refused(wrong, consent)
    assert refused.code == "pkcs11_pin_incorrect"
    assert TOKEN in refused.message
    assert "pin-0000-0000" not in refused.message
    # Remembered: a request storm must not walk a hardware token into its PIN lockout.
    assert _refused(wrong, consent).code == "pkcs11_pin_incorrect"
    # The right PIN is another configuration and works at once; nothing logged shows either PIN.
    service.sign(consent, signer_name="张晓明", reason="同意", key=hsm.config())
    assert PIN not in caplog.text
    assert "pin-0000-0000" not in caplog.text
    # Once the token is open, another PIN for it is a conflict, not a second login attempt.
    conflict = _refused(hsm.config(pin="pin-1111-1111"), consent)
    assert conflict.code == "pkcs11_pin_conflict"
    assert "pin-1111-1111" not in conflict.message


def test_two_keys_on_one_token_share_its_login(hsm: Hsm, consent: bytes) -> None:
    ec_key, rsa_key = hsm.config(), hsm.config(RSA_LABEL, cert_path=hsm.rsa_cert)
    signed = consent
    for name, config in (("张晓明", ec_key), ("李经理", rsa_key), ("王保险", ec_key)):
        signed = service.sign(signed, signer_name=name, reason="同意", key=config)
    result = service.verify(signed, [hsm.ca_pem])
    assert result.valid
    assert [s.certificate_subject.rsplit(",", 1)[-1].strip() for s in result.signers] == [
        "Common Name: Branchless Platform Signing (HSM)",
        "Common Name: Branchless HSM RSA Seal",
        "Common Name: Branchless Platform Signing (HSM)",
    ]


def test_missing_module_is_a_clear_error(hsm: Hsm, consent: bytes, tmp_path: Path) -> None:
    refused = _refused(hsm.config(module_path=tmp_path / "no-such-module.so"), consent)
    assert refused.code == "pkcs11_module_missing"
    assert "no-such-module.so" in refused.message


def test_a_file_that_is_not_a_pkcs11_module_is_a_clear_error(hsm: Hsm, consent: bytes, tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.so"
    bogus.write_bytes(b"not a shared object")
    refused = _refused(hsm.config(module_path=bogus), consent)
    assert refused.code == "pkcs11_module_invalid"


def test_unknown_token_lists_the_tokens_present(hsm: Hsm, consent: bytes) -> None:
    refused = _refused(hsm.config(token_label="no-such-token"), consent)
    assert refused.code == "pkcs11_token_not_found"
    assert repr(TOKEN) in refused.message


def test_unknown_key_label_is_a_clear_error(hsm: Hsm, consent: bytes) -> None:
    refused = _refused(hsm.config("no-such-key"), consent)
    assert refused.code == "pkcs11_key_not_found"
    assert "no-such-key" in refused.message


def test_missing_certificate_is_a_clear_error(hsm: Hsm, consent: bytes) -> None:
    # The imported RSA key has no certificate object on the token.
    refused = _refused(hsm.config(RSA_LABEL), consent)
    assert refused.code == "pkcs11_cert_not_found"


@pytest.mark.parametrize("which", ["other algorithm", "same algorithm"])
def test_certificate_of_another_key_is_refused(hsm: Hsm, consent: bytes, which: str) -> None:
    cert = hsm.rsa_cert if which == "other algorithm" else hsm.stranger_ec_cert
    refused = _refused(hsm.config(cert_path=cert), consent)
    assert refused.code == "pkcs11_cert_mismatch"


def test_empty_labels_or_pin_are_configuration_errors(hsm: Hsm, consent: bytes) -> None:
    assert _refused(hsm.config(""), consent).code == "pkcs11_config"
    assert _refused(hsm.config(pin=""), consent).code == "pkcs11_config"


def test_a_token_that_fails_mid_life_is_reopened(hsm: Hsm, consent: bytes) -> None:
    config = hsm.config()
    signer = token_signing.open_token_signer(config)
    signer.pkcs11_session.close()  # as if the HSM restarted under the open session
    refused = _refused(config, consent)
    assert refused.code == "pkcs11_sign_failed"
    signed = service.sign(consent, signer_name="张晓明", reason="同意", key=config)
    assert service.verify(signed, [hsm.ca_pem]).valid
    assert token_signing.open_token_signer(config) is not signer


def test_without_python_pkcs11_the_error_says_what_to_install(
    hsm: Hsm, consent: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As on an installation without the pyHanko[pkcs11] extra (test_signing_keys covers it for real there).
    monkeypatch.setitem(sys.modules, "pkcs11", None)
    monkeypatch.delitem(sys.modules, "kyc.signing.pkcs11")
    refused = _refused(hsm.config(), consent)
    assert refused.code == "pkcs11_unavailable"
    assert "python-pkcs11" in refused.message
