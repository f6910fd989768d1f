"""Signing keys: PKCS#12 file, PKCS#11 token, or a development PKI created on first use.

The config objects are small frozen dataclasses so they pickle into worker processes; the key
material itself is opened inside the worker (cryptography key objects do not pickle) and cached
for the life of that process. Secrets are fields with ``repr=False`` and never appear in messages,
logs or return values: callers get signed bytes and public certificate facts only.

Development PKI (``DevKeyConfig``): an EC P-256 CA issues an EC P-256 platform signing certificate
and an RSA-2048 timestamping certificate (pyHanko's in-process timestamper signs with RSA only).
The CA key is discarded once both are issued, so nothing else can ever be minted under that CA;
re-create the directory to rotate. Each PKCS#12 file has its own random passphrase in a 0600 file.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import functools
import os
import secrets
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec
from asn1crypto import keys as asn1_keys
from asn1crypto import pem
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from kyc.signing.errors import KeyConfigError

if TYPE_CHECKING:
    from pyhanko.sign.signers import Signer

CA_FILE = "ca.pem"
SIGNING_P12 = "signing.p12"
SIGNING_PASS = "signing.pass"  # noqa: S105  # a file name, not a secret
TSA_P12 = "tsa.p12"
TSA_PASS = "tsa.pass"  # noqa: S105
_ORG = "Branchless (development only)"


@dataclass(frozen=True)
class DevKeyConfig:
    """Use (and create on first use) the development PKI under ``directory``."""

    directory: Path


@dataclass(frozen=True)
class Pkcs12KeyConfig:
    """A PKCS#12 archive holding the signing key, its certificate and ideally the chain."""

    path: Path
    passphrase: bytes = field(repr=False)
    chain: tuple[Path, ...] = ()
    """Extra PEM/DER certificates (intermediates, root) when the archive lacks them."""


@dataclass(frozen=True)
class Pkcs11KeyConfig:
    """A key on a PKCS#11 token (HSM, smart card, SoftHSM), found by token and key label.

    Only paths, labels and the PIN: it pickles into worker processes, each of which loads the module
    and logs in itself (see ``kyc.signing.pkcs11``). The PIN is left out of ``repr``.
    """

    module_path: Path
    token_label: str
    key_label: str
    pin: str = field(repr=False)
    cert_label: str | None = None
    """Label of the certificate object on the token; defaults to ``key_label``."""
    cert_path: Path | None = None
    """The signing certificate as a PEM/DER file instead of from the token (further certificates in
    the file count as chain); for tokens that hold only the key."""
    chain: tuple[Path, ...] = ()


KeyConfig = DevKeyConfig | Pkcs12KeyConfig | Pkcs11KeyConfig


class CertificateInfo(msgspec.Struct, frozen=True):
    """Public facts about a certificate: safe to show in the API and audit log."""

    subject: str
    issuer: str
    serial_hex: str
    not_before: dt.datetime
    not_after: dt.datetime
    sha256_fingerprint: str


@dataclass(frozen=True)
class DevPki:
    """Paths of the development PKI files (the passphrases stay in their 0600 files)."""

    directory: Path

    @property
    def ca_cert(self) -> Path:
        return self.directory / CA_FILE

    def complete(self) -> bool:
        names = (CA_FILE, SIGNING_P12, SIGNING_PASS, TSA_P12, TSA_PASS)
        return all((self.directory / n).is_file() for n in names)


# --------------------------------------------------------------------------- development PKI


def ensure_dev_pki(directory: Path) -> DevPki:
    """Create the development CA, signing and TSA certificates unless they already exist.

    A file lock makes concurrent first runs (two workers, CLI beside the app) create it once.
    """
    pki = DevPki(directory)
    if pki.complete():
        return pki
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    with _locked(directory / ".lock"):
        if not pki.complete():
            _create_dev_pki(directory)
    return pki


@contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    fd = os.open(lock_path, os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, common_name), x509.NameAttribute(NameOID.ORGANIZATION_NAME, _ORG)]
    )


def _key_usage(*, sign: bool, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=sign,
        content_commitment=sign,  # "non-repudiation": pyHanko's validator requires it for signers
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def _create_dev_pki(directory: Path) -> None:
    now = dt.datetime.now(dt.UTC)
    start = now - dt.timedelta(minutes=5)  # tolerate small clock skew between hosts
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("Branchless Development CA")
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(sign=False, ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    def issue(
        key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey, common_name: str, eku: x509.ExtendedKeyUsage | None
    ) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(now + dt.timedelta(days=825))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(sign=True, ca=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        )
        if eku is not None:
            builder = builder.add_extension(eku, critical=True)
        return builder.sign(ca_key, hashes.SHA256())

    signing_key = ec.generate_private_key(ec.SECP256R1())
    signing_cert = issue(signing_key, "Branchless Platform Signing (dev)", None)
    tsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    tsa_cert = issue(
        tsa_key, "Branchless Timestamp Authority (dev)", x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING])
    )

    for p12_name, pass_name, key, cert, label in (
        (SIGNING_P12, SIGNING_PASS, signing_key, signing_cert, b"platform-signing"),
        (TSA_P12, TSA_PASS, tsa_key, tsa_cert, b"timestamp-authority"),
    ):
        passphrase = secrets.token_urlsafe(32).encode()
        archive = pkcs12.serialize_key_and_certificates(
            label, key, cert, [ca_cert], serialization.BestAvailableEncryption(passphrase)
        )
        _write_atomic(directory / pass_name, passphrase)
        _write_atomic(directory / p12_name, archive)
    # The CA certificate is public; it is written last because complete() keys on all files.
    _write_atomic(directory / CA_FILE, ca_cert.public_bytes(serialization.Encoding.PEM), mode=0o644)


def _write_atomic(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write atomically with restrictive permissions from the first byte (no chmod race)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# --------------------------------------------------------------------------- loading


def load_certificates(data: bytes) -> list[asn1_x509.Certificate]:
    """All certificates in PEM (one or many) or DER bytes; ``ValueError`` if there are none or one is bad.

    asn1crypto parses lazily, so each certificate's subject and key are touched here: a damaged
    trust root must fail at load time, not half-way through a validation.
    """
    try:
        if pem.detect(data):
            ders = [der for kind, _, der in pem.unarmor(data, multiple=True) if kind == "CERTIFICATE"]
        else:
            ders = [data]
        certs = [asn1_x509.Certificate.load(der) for der in ders]
        for cert in certs:
            _ = (cert.subject.human_friendly, cert.public_key.algorithm)
    except (ValueError, TypeError, KeyError) as exc:
        raise ValueError(f"not a certificate: {exc.__class__.__name__}") from None
    if not certs:
        raise ValueError("no certificate found")
    return certs


def read_certificate_files(paths: Sequence[Path]) -> list[asn1_x509.Certificate]:
    """All certificates in ``paths``, in order; ``KeyConfigError`` naming the file that is unreadable."""
    return _read_certs(paths)


def _read_certs(paths: Sequence[Path]) -> list[asn1_x509.Certificate]:
    certs: list[asn1_x509.Certificate] = []
    for path in paths:
        try:
            certs.extend(load_certificates(path.read_bytes()))
        except (OSError, ValueError) as exc:
            raise KeyConfigError(f"cannot read certificate file {path}: {exc.__class__.__name__}") from None
    return certs


def _read_pkcs12(path: Path, passphrase: bytes, chain: Sequence[Path]) -> Signer:
    from pyhanko.sign.signers import SimpleSigner

    try:
        data = path.read_bytes()
    except OSError as exc:
        raise KeyConfigError(f"cannot read PKCS#12 file {path}: {exc.strerror}") from None
    try:
        signer: Signer = SimpleSigner.load_pkcs12_data(data, _read_certs(chain), passphrase=passphrase)
    except ValueError:
        # The underlying message can echo parser state; say only what the operator can fix.
        raise KeyConfigError(f"cannot open PKCS#12 file {path}: wrong passphrase or damaged file") from None
    return signer


def _open_pkcs11(config: Pkcs11KeyConfig) -> Signer:
    try:
        from kyc.signing.pkcs11 import open_token_signer
    except ModuleNotFoundError as exc:
        if exc.name not in ("pkcs11", "pkcs11._pkcs11"):
            raise
        raise KeyConfigError(
            "PKCS#11 signing needs the python-pkcs11 package (pyHanko[pkcs11]), which is not installed",
            code="pkcs11_unavailable",
        ) from None
    return open_token_signer(config)


def open_signer(config: KeyConfig) -> Signer:
    """The pyHanko signer for ``config``, opened once per process.

    Internal to the signing worker: the returned object holds (or reaches) the private key and must
    not cross an API boundary. A PKCS#11 session is cached by ``kyc.signing.pkcs11``, which can drop
    and reopen it when the token fails.
    """
    if isinstance(config, Pkcs11KeyConfig):
        return _open_pkcs11(config)
    return _open_file_signer(config)


@functools.lru_cache(maxsize=8)
def _open_file_signer(config: DevKeyConfig | Pkcs12KeyConfig) -> Signer:
    if isinstance(config, DevKeyConfig):
        pki = ensure_dev_pki(config.directory)
        passphrase = (pki.directory / SIGNING_PASS).read_bytes()
        return _read_pkcs12(pki.directory / SIGNING_P12, passphrase, ())
    return _read_pkcs12(config.path, config.passphrase, config.chain)


@functools.lru_cache(maxsize=4)
def dev_tsa_material(directory: Path) -> tuple[asn1_x509.Certificate, asn1_keys.PrivateKeyInfo, asn1_x509.Certificate]:
    """The development TSA's certificate, key and CA certificate (for the in-process timestamper)."""
    from pyhanko.sign.signers import SimpleSigner

    pki = ensure_dev_pki(directory)
    signer = _read_pkcs12(pki.directory / TSA_P12, (pki.directory / TSA_PASS).read_bytes(), ())
    assert isinstance(signer, SimpleSigner)
    assert signer.signing_cert is not None
    ca_cert = load_certificates(pki.ca_cert.read_bytes())[0]
    return signer.signing_cert, signer.signing_key, ca_cert


def trust_roots(config: KeyConfig | None, extra: Sequence[Path] = ()) -> list[bytes]:
    """DER trust anchors for verification: the dev CA when ``config`` is the dev PKI (if created), plus ``extra``.

    Returned as bytes so they can be handed to a worker process.
    """
    roots: list[asn1_x509.Certificate] = []
    if isinstance(config, DevKeyConfig):
        ca = DevPki(config.directory).ca_cert
        if ca.is_file():  # verifying must not mint a fresh PKI as a side effect
            roots.extend(_read_certs([ca]))
    roots.extend(_read_certs(extra))
    return [c.dump() for c in roots]


def certificate_info(config: KeyConfig) -> CertificateInfo:
    """Public facts about the platform signing certificate (for the API, audit log and status pages)."""
    cert = open_signer(config).signing_cert
    if cert is None:
        raise KeyConfigError("the signing key has no certificate")
    return describe_certificate(cert)


def describe_certificate(cert: asn1_x509.Certificate) -> CertificateInfo:
    """Public facts about one certificate."""
    return CertificateInfo(
        subject=cert.subject.human_friendly,
        issuer=cert.issuer.human_friendly,
        serial_hex=format(cert.serial_number, "x"),
        not_before=cert.not_valid_before,
        not_after=cert.not_valid_after,
        sha256_fingerprint=cert.sha256.hex(),
    )
