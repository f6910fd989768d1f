"""``branchless sign ...``: sign any PDF with the platform key, verify signed PDFs.

Every command prints exactly one JSON object on stdout, errors included, so scripts and the
contract checks can parse it. Exit status: 0 success / valid, 1 verified but invalid, 2 refused
input or configuration, 3 unexpected fault (traceback on stderr).

Configuration comes from the environment (secrets from files, never from variable values):

* ``BRANCHLESS_SIGNING_DIR`` development PKI directory (default ``signing`` under ``BRANCHLESS_VAR_DIR``)
* ``BRANCHLESS_SIGNING_PKCS12`` + ``BRANCHLESS_SIGNING_PKCS12_PASSPHRASE_FILE`` use a PKCS#12 key
* ``BRANCHLESS_SIGNING_PKCS11_MODULE``, ``_TOKEN``, ``_KEY``, ``_PIN_FILE`` use a PKCS#11 token
  (``_CERT_LABEL`` or ``_CERT`` (a file) for its certificate; ``BRANCHLESS_SIGNING_CHAIN`` for intermediates)
* ``BRANCHLESS_SIGNING_TSA_URL`` RFC 3161 TSA (``local`` = the in-process development TSA)
* ``BRANCHLESS_SIGNING_TRUST_ROOTS`` extra trusted root certificates, ``os.pathsep``-separated
"""

from __future__ import annotations

import os
import sys
import tempfile
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NoReturn

import click
import msgspec

from kyc.signing.errors import PdfTooLarge, SigningError
from kyc.signing.keys import DevKeyConfig, KeyConfig, Pkcs11KeyConfig, Pkcs12KeyConfig, trust_roots
from kyc.signing.models import InputLimits, SignOptions
from kyc.signing.tsa import HttpTsaConfig, LocalTsaConfig, LocalTsaServer, TsaConfig

ENV_DIR = "BRANCHLESS_SIGNING_DIR"


def signing_dir(env: Mapping[str, str] = os.environ) -> Path:
    return Path(env.get(ENV_DIR) or Path(env.get("BRANCHLESS_VAR_DIR", "var")) / "signing")


def _secret_file(env: Mapping[str, str], name: str) -> bytes:
    path = env.get(name)
    if not path:
        raise SigningError(f"{name} must name a file holding the secret", code="key_config")
    try:
        return Path(path).read_bytes().strip()
    except OSError as exc:
        raise SigningError(f"cannot read {name} file: {exc.strerror}", code="key_config") from None


def key_config(env: Mapping[str, str] = os.environ) -> KeyConfig:
    """PKCS#11 if its module is set, else PKCS#12 if its file is set, else the development PKI."""
    if module := env.get("BRANCHLESS_SIGNING_PKCS11_MODULE"):
        return Pkcs11KeyConfig(
            module_path=Path(module),
            token_label=env.get("BRANCHLESS_SIGNING_PKCS11_TOKEN", ""),
            key_label=env.get("BRANCHLESS_SIGNING_PKCS11_KEY", ""),
            pin=_secret_file(env, "BRANCHLESS_SIGNING_PKCS11_PIN_FILE").decode(),
            cert_label=env.get("BRANCHLESS_SIGNING_PKCS11_CERT_LABEL") or None,
            cert_path=Path(cert) if (cert := env.get("BRANCHLESS_SIGNING_PKCS11_CERT")) else None,
            chain=tuple(Path(p) for p in env.get("BRANCHLESS_SIGNING_CHAIN", "").split(os.pathsep) if p),
        )
    if p12 := env.get("BRANCHLESS_SIGNING_PKCS12"):
        return Pkcs12KeyConfig(Path(p12), _secret_file(env, "BRANCHLESS_SIGNING_PKCS12_PASSPHRASE_FILE"))
    return DevKeyConfig(signing_dir(env))


def tsa_config(env: Mapping[str, str] = os.environ) -> TsaConfig | None:
    url = env.get("BRANCHLESS_SIGNING_TSA_URL", "").strip()
    if not url:
        return None
    return LocalTsaConfig(signing_dir(env)) if url == "local" else HttpTsaConfig(url)


def _emit(payload: Any, status: int = 0) -> NoReturn:
    click.echo(msgspec.json.encode(payload).decode())
    sys.exit(status)


def _fail(exc: SigningError) -> NoReturn:
    _emit(exc.as_dict(), 2)


def _crash(exc: Exception) -> NoReturn:
    """An unexpected fault: traceback to stderr for the operator, still one JSON object on stdout."""
    traceback.print_exception(exc, file=sys.stderr)
    _emit({"error": "internal_error", "message": exc.__class__.__name__}, 3)


def _read_input(path: str, limits: InputLimits) -> bytes:
    try:
        size = os.stat(path).st_size
        if size > limits.max_bytes:  # refuse before reading a huge file into memory
            raise PdfTooLarge(f"the PDF is {size} bytes; the limit is {limits.max_bytes}")
        return Path(path).read_bytes()
    except OSError as exc:
        raise SigningError(f"cannot read {path}: {exc.strerror}", code="io_error") from None


def _write_output(path: str, data: bytes) -> None:
    target = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=target.parent or Path("."), prefix=f".{target.name}.")
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, target)
    except OSError as exc:
        raise SigningError(f"cannot write {path}: {exc.strerror}", code="io_error") from None


@click.group(name="sign")
def sign() -> None:
    """Sign PDFs with the platform key (PAdES, audit trail) and verify signed PDFs."""


@sign.command("pdf")
@click.argument("input_pdf", metavar="IN")
@click.argument("output_pdf", metavar="OUT")
@click.option("--signer", "signer_name", required=True, help="Signer's name as it appears on the document.")
@click.option("--reason", default="签署确认 Signed by the platform", show_default=True)
@click.option("--location", default="", help="Where the signature is applied.")
@click.option("--title", default="", help="Document title for the audit-trail page.")
def sign_pdf(*, input_pdf: str, output_pdf: str, signer_name: str, reason: str, location: str, title: str) -> None:
    """Sign IN with the platform key, adding the audit-trail page first, and write OUT."""
    from kyc.signing.service import sign_with_receipt

    options = SignOptions(document_title=title or Path(input_pdf).stem)
    try:
        receipt = sign_with_receipt(
            _read_input(input_pdf, options.limits),
            signer_name=signer_name,
            reason=reason,
            location=location,
            key=key_config(),
            tsa=tsa_config(),
            options=options,
        )
        _write_output(output_pdf, receipt.pdf)
    except SigningError as exc:
        _fail(exc)
    except Exception as exc:
        _crash(exc)
    _emit(
        {
            "output": output_pdf,
            "field_name": receipt.field_name,
            "signed_at": receipt.signed_at,
            "level": receipt.level,
            "prior_sha256": receipt.prior_sha256,
            "signed_sha256": receipt.signed_sha256,
            "evidence_digest": receipt.evidence_digest,
        }
    )


@sign.command("verify")
@click.argument("file_pdf", metavar="FILE")
@click.option("--trust-root", "extra_roots", multiple=True, help="Extra trusted root certificate (PEM/DER).")
def verify_pdf(file_pdf: str, extra_roots: tuple[str, ...]) -> None:
    """Verify every signature in FILE; exit 1 unless the document is valid."""
    from kyc.signing.service import verify

    env_roots = [p for p in os.environ.get("BRANCHLESS_SIGNING_TRUST_ROOTS", "").split(os.pathsep) if p]
    limits = InputLimits()
    try:
        config = key_config()
        roots = trust_roots(
            config if isinstance(config, DevKeyConfig) else None, [Path(p) for p in (*env_roots, *extra_roots)]
        )
        result = verify(_read_input(file_pdf, limits), roots, limits)
    except SigningError as exc:
        _fail(exc)
    except Exception as exc:
        _crash(exc)
    _emit(result, 0 if result.valid else 1)


@sign.command("tsa")
@click.option("--port", default=3161, show_default=True, help="Port on 127.0.0.1.")
def serve_tsa(port: int) -> None:
    """Run the development timestamp authority on 127.0.0.1 until interrupted."""
    try:
        server = LocalTsaServer(signing_dir(), port=port).start()
    except (SigningError, OSError) as exc:
        _emit({"error": "tsa_unavailable", "message": str(exc)}, 2)
    click.echo(msgspec.json.encode({"url": server.url}).decode(), err=True)
    try:
        server.wait()
    except KeyboardInterrupt:
        server.stop()
