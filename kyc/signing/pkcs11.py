"""Signing with a key held on a PKCS#11 token (HSM, smart card, SoftHSM2) through pyHanko.

The private key never leaves the token: pyHanko's ``PKCS11Signer`` sends the data (or, for tokens
without a hash-then-sign mechanism, its digest) to the token and gets the signature back.

A token is opened (module loaded, user logged in) once per process and kept open; each key on it
is looked up once. Every step fails with its own ``KeyConfigError`` code, so an operator can fix
the setting without reading a traceback:

``pkcs11_unavailable``      python-pkcs11 is not installed (raised by ``keys.open_signer``)
``pkcs11_config``           a label or the PIN is empty
``pkcs11_module_missing``   no file at the module path
``pkcs11_module_invalid``   the file is not a loadable PKCS#11 module
``pkcs11_token_not_found``  no token with that label (the labels present are listed)
``pkcs11_token_ambiguous``  several tokens carry the label
``pkcs11_pin_locked``       the token reports the user PIN locked (no login is attempted)
``pkcs11_pin_expired``      the token wants the user PIN changed first
``pkcs11_pin_incorrect``    the token refused the PIN
``pkcs11_pin_conflict``     the token is already open in this process with another PIN
``pkcs11_key_not_found``    no private key with that label (or several: ``pkcs11_key_ambiguous``)
``pkcs11_key_cannot_sign``  the key exists but its CKA_SIGN is false
``pkcs11_cert_not_found``   no certificate with that label on the token (or ``pkcs11_cert_ambiguous``)
``pkcs11_cert_mismatch``    the certificate does not belong to the key (checked by a test signature)
``pkcs11_error``            any other PKCS#11 failure while opening
``pkcs11_sign_failed``      the token failed during a signature (the session is reopened next time)

The PIN is never put into a message or a log line. A refused PIN is remembered for the life of the
process (per configuration, so a corrected PIN is tried at once): every retry with a wrong PIN
brings a hardware token closer to locking itself, so requests must not hammer it.

The token's certificate may also be given as a file (``Pkcs11KeyConfig.cert_path``) for tokens
that hold only the key; pyHanko accepts either.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pkcs11
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
from pyhanko.sign.pkcs11 import PKCS11Signer, select_pkcs11_signing_params
from pyhanko_certvalidator.sig_validate import DefaultSignatureValidator

from kyc.signing.errors import KeyConfigError

if TYPE_CHECKING:
    from asn1crypto import x509 as asn1_x509

    from kyc.signing.keys import Pkcs11KeyConfig

__all__ = ["TokenSigner", "close_all", "forget", "open_token_signer"]

# Token flags python-pkcs11's TokenFlag enum leaves out (PKCS#11 v2.40, CK_TOKEN_INFO.flags).
_CKF_USER_PIN_LOCKED = 0x00040000

_DIGEST = "sha256"
_KEY_ALGORITHMS = {KeyType.EC: "ec", KeyType.RSA: "rsa", KeyType.DSA: "dsa"}
_PIN_ERRORS: tuple[type[pkcs11.PKCS11Error], ...] = (
    pkcs11.PinIncorrect,
    pkcs11.PinInvalid,
    pkcs11.PinLenRange,
)


@dataclass
class _TokenSession:
    """One logged-in session per token and process, shared by every key used on that token.

    PKCS#11 login belongs to the application, not to a session: a second ``C_Login`` fails with
    "already logged in", and closing the session that logged in logs every other one out. So keys
    on the same token share this session, and its lock serialises their operations.
    """

    key: tuple[Path, str]
    pin: str = field(repr=False)
    session: pkcs11.Session
    token: pkcs11.Token
    lock: threading.Lock = field(default_factory=threading.Lock)
    signers: dict[Pkcs11KeyConfig, TokenSigner] = field(default_factory=dict)

    def close(self) -> None:
        with contextlib.suppress(pkcs11.PKCS11Error):  # already closed, or the token is gone
            self.session.close()


_lock = threading.Lock()
_sessions: dict[tuple[Path, str], _TokenSession] = {}
_refused: dict[Pkcs11KeyConfig, KeyConfigError] = {}


def _reset_after_fork() -> None:
    # A child must not use its parent's sessions (PKCS#11 forbids it); it reopens on first use.
    # The objects are dropped, not closed: closing would log the parent out. The lock is replaced,
    # as another thread of the parent may have held it at the fork.
    global _lock  # noqa: PLW0603
    _lock = threading.Lock()
    _sessions.clear()


os.register_at_fork(after_in_child=_reset_after_fork)


def _token_key(config: Pkcs11KeyConfig) -> tuple[Path, str]:
    return (config.module_path, config.token_label)


class TokenSigner(PKCS11Signer):
    """pyHanko's PKCS#11 signer, with operations serialised per session and token faults made clear.

    A PKCS#11 session runs one operation at a time, while pyHanko signs on an executor thread; the
    session's lock keeps two signatures in one process (threads, two event loops) from interleaving.
    """

    def __init__(self, *args: Any, config: Pkcs11KeyConfig, owner: _TokenSession, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._config = config
        self._owner = owner

    def __repr__(self) -> str:
        return f"<TokenSigner token={self._config.token_label!r} key={self._config.key_label!r}>"

    async def async_sign_raw(self, data: bytes, digest_algorithm: str, dry_run: bool = False) -> bytes:
        if dry_run:
            return await super().async_sign_raw(data, digest_algorithm, dry_run=True)
        lock = self._owner.lock
        await asyncio.get_running_loop().run_in_executor(None, lock.acquire)
        try:
            return await super().async_sign_raw(data, digest_algorithm)
        except pkcs11.PKCS11Error as exc:
            failure = exc.__class__.__name__
        finally:
            lock.release()
        # The session may be gone (token removed, HSM restarted): the next request opens a new one.
        # Dropped after the lock is released: the module lock is always taken before a session's.
        _drop(self._owner)
        raise KeyConfigError(
            f"the PKCS#11 token {self._config.token_label!r} failed to sign: {failure}", code="pkcs11_sign_failed"
        )


def open_token_signer(config: Pkcs11KeyConfig) -> TokenSigner:
    """The signer for ``config``, opened on first use in this process and kept open."""
    if not config.token_label or not config.key_label:
        raise _fail("the PKCS#11 token label and key label must both be set", "pkcs11_config")
    if not config.pin:
        raise _fail("the PKCS#11 PIN is empty", "pkcs11_config")
    with _lock:
        refused = _refused.get(config)
        if refused is not None:
            raise KeyConfigError(refused.message, code=refused.code)
        opened = _sessions.get(_token_key(config))
        if opened is not None and not secrets.compare_digest(opened.pin.encode(), config.pin.encode()):
            raise _fail(
                f"PKCS#11 token {config.token_label!r} is already open in this process with another PIN",
                "pkcs11_pin_conflict",
            )
        if opened is None:
            try:
                opened = _log_in(config)
            except KeyConfigError as exc:
                if exc.code in ("pkcs11_pin_incorrect", "pkcs11_pin_locked"):
                    _refused[config] = exc
                raise
            _sessions[_token_key(config)] = opened
        signer = opened.signers.get(config)
        if signer is None:
            with opened.lock:
                signer = _signer_on(opened, config)
            opened.signers[config] = signer
        return signer


def forget(config: Pkcs11KeyConfig) -> None:
    """Close and drop the session of ``config``'s token, with every signer on it (reopened on next use)."""
    with _lock:
        opened = _sessions.pop(_token_key(config), None)
    if opened is not None:
        opened.close()


def _drop(opened: _TokenSession) -> None:
    """Close ``opened`` and drop it unless another thread has already replaced it."""
    with _lock:
        if _sessions.get(opened.key) is opened:
            del _sessions[opened.key]
    opened.close()


def close_all() -> None:
    """Close every cached session and forget refused PINs (shutdown, tests, a rotated PIN file)."""
    with _lock:
        sessions = list(_sessions.values())
        _sessions.clear()
        _refused.clear()
    for opened in sessions:
        opened.close()


def _fail(message: str, code: str) -> KeyConfigError:
    return KeyConfigError(message, code=code)


def _log_in(config: Pkcs11KeyConfig) -> _TokenSession:
    module = config.module_path
    if not module.is_file():
        raise _fail(f"no PKCS#11 module at {module}", "pkcs11_module_missing")
    try:
        lib = pkcs11.lib(str(module))
    except pkcs11.PKCS11Error as exc:
        # The loader's message names the file and why (not ELF, missing C_GetFunctionList).
        detail = str(exc).splitlines()[0][:300] if str(exc) else exc.__class__.__name__
        raise _fail(f"cannot load PKCS#11 module {module}: {detail}", "pkcs11_module_invalid") from None

    token = _find_token(lib, config)
    label = config.token_label
    if int(token.flags) & _CKF_USER_PIN_LOCKED:
        raise _fail(f"the user PIN of PKCS#11 token {label!r} is locked", "pkcs11_pin_locked")
    try:
        session = token.open(user_pin=config.pin)
    except pkcs11.UserAlreadyLoggedIn:
        # This process is logged in already (other code, or a parent it was forked from): login
        # belongs to the application, so a plain session sees the private objects. The PIN is not
        # checked again in that case; the token cannot check it while logged in.
        session = token.open()
    except _PIN_ERRORS:
        raise _fail(f"PKCS#11 token {label!r} refused the PIN", "pkcs11_pin_incorrect") from None
    except pkcs11.PinLocked:
        raise _fail(f"the user PIN of PKCS#11 token {label!r} is locked", "pkcs11_pin_locked") from None
    except pkcs11.PinExpired:
        raise _fail(f"the user PIN of PKCS#11 token {label!r} has expired", "pkcs11_pin_expired") from None
    except pkcs11.PKCS11Error as exc:
        raise _fail(f"cannot log in to PKCS#11 token {label!r}: {exc.__class__.__name__}", "pkcs11_error") from None
    return _TokenSession(key=_token_key(config), pin=config.pin, session=session, token=token)


def _find_token(lib: Any, config: Pkcs11KeyConfig) -> pkcs11.Token:
    try:
        token: pkcs11.Token = lib.get_token(token_label=config.token_label)
    except pkcs11.NoSuchToken:
        try:
            present = sorted(t.label for t in lib.get_tokens())
        except pkcs11.PKCS11Error:
            present = []
        listed = ", ".join(repr(label) for label in present[:10]) or "none"
        raise _fail(
            f"no PKCS#11 token labelled {config.token_label!r} in {config.module_path} (present: {listed})",
            "pkcs11_token_not_found",
        ) from None
    except pkcs11.MultipleTokensReturned:
        raise _fail(
            f"several PKCS#11 tokens are labelled {config.token_label!r}; relabel one", "pkcs11_token_ambiguous"
        ) from None
    except pkcs11.PKCS11Error as exc:
        raise _fail(f"cannot list the PKCS#11 tokens: {exc.__class__.__name__}", "pkcs11_error") from None
    return token


def _one(session: pkcs11.Session, object_class: ObjectClass, label: str, what: str, code: str) -> pkcs11.Object:
    found = list(session.get_objects({Attribute.CLASS: object_class, Attribute.LABEL: label}))
    if not found:
        raise _fail(f"no {what} labelled {label!r} on the PKCS#11 token", f"pkcs11_{code}_not_found")
    if len(found) > 1:
        raise _fail(f"{len(found)} {what} objects are labelled {label!r} on the token", f"pkcs11_{code}_ambiguous")
    return found[0]


def _signer_on(opened: _TokenSession, config: Pkcs11KeyConfig) -> TokenSigner:
    try:
        return _build_signer(opened, config)
    except pkcs11.PKCS11Error as exc:
        raise _fail(
            f"cannot use key {config.key_label!r} on PKCS#11 token {config.token_label!r}: {exc.__class__.__name__}",
            "pkcs11_error",
        ) from None


def _build_signer(opened: _TokenSession, config: Pkcs11KeyConfig) -> TokenSigner:
    from asn1crypto import x509 as asn1_x509

    from kyc.signing.keys import load_certificates, read_certificate_files

    session = opened.session
    key = _one(session, ObjectClass.PRIVATE_KEY, config.key_label, "private key", "key")
    if not isinstance(key, pkcs11.SignMixin) or not key[Attribute.SIGN]:
        raise _fail(f"the key {config.key_label!r} on the PKCS#11 token may not sign", "pkcs11_key_cannot_sign")
    chain = read_certificate_files(config.chain)
    if config.cert_path is not None:
        from_file = read_certificate_files([config.cert_path])
        cert = from_file[0]
        chain = [*from_file[1:], *chain]
    else:
        cert_label = config.cert_label or config.key_label
        cert_obj = _one(session, ObjectClass.CERTIFICATE, cert_label, "certificate", "cert")
        try:
            cert = load_certificates(bytes(cert_obj[Attribute.VALUE]))[0]
        except ValueError:
            raise _fail(f"the certificate {cert_label!r} on the PKCS#11 token is damaged", "key_config") from None
    assert isinstance(cert, asn1_x509.Certificate)
    key_algorithm = _KEY_ALGORITHMS.get(key[Attribute.KEY_TYPE])
    if key_algorithm is not None and key_algorithm != cert.public_key.algorithm:
        raise _mismatch(cert)

    raw = _needs_raw_mechanism(opened.token, key)
    signer = TokenSigner(
        session,
        signing_cert=cert,
        ca_chain=chain,
        key_label=config.key_label,
        cert_label=None,
        use_raw_mechanism=raw,
        config=config,
        owner=opened,
    )
    _ = signer.signing_cert  # pulls the key handle now, so a fault surfaces here and not mid-signing
    _self_test(signer, key, cert, raw)
    return signer


def _needs_raw_mechanism(token: pkcs11.Token, key: pkcs11.Object) -> bool:
    """True when the token signs a digest but cannot hash-then-sign (SoftHSM2 lacks CKM_ECDSA_SHA256)."""
    try:
        mechanisms = token.slot.get_mechanisms()
        key_type = key[Attribute.KEY_TYPE]
    except pkcs11.PKCS11Error:
        return False  # the token will not say: let pyHanko use the usual combined mechanism
    if key_type == KeyType.EC:
        return Mechanism.ECDSA_SHA256 not in mechanisms and Mechanism.ECDSA in mechanisms
    if key_type == KeyType.RSA:
        return Mechanism.SHA256_RSA_PKCS not in mechanisms and Mechanism.RSA_PKCS in mechanisms
    return False


def _mismatch(cert: asn1_x509.Certificate) -> KeyConfigError:
    return _fail(
        f"the certificate {cert.subject.human_friendly!r} does not belong to the key on the PKCS#11 token",
        "pkcs11_cert_mismatch",
    )


def _self_test(signer: TokenSigner, key: pkcs11.SignMixin, cert: asn1_x509.Certificate, raw: bool) -> None:
    """Sign a random challenge with the token key and check it with the certificate's public key.

    A certificate for another key would otherwise produce PDFs whose signatures never verify.
    """
    mechanism = signer.get_signature_mechanism_for_digest(_DIGEST)
    spec = select_pkcs11_signing_params(mechanism, _DIGEST, use_raw_mechanism=raw, sign_kwargs={})
    challenge = b"branchless pkcs11 self-test " + secrets.token_bytes(16)
    data = spec.pre_sign_transform(challenge) if spec.pre_sign_transform else challenge
    signature = key.sign(data, **spec.sign_kwargs)
    if spec.post_sign_transform is not None:
        signature = spec.post_sign_transform(signature)
    try:
        DefaultSignatureValidator().validate_signature(signature, challenge, cert.public_key, mechanism)
    except Exception:  # InvalidSignature, or a malformed value: either way the pair is unusable
        raise _mismatch(cert) from None
