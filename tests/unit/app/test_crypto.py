"""Field encryption and keyed hashes."""

from __future__ import annotations

import base64
import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.crypto import CryptoError, KeyRing


def _key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


RING = KeyRing.parse(f"k2:{_key()},k1:{_key()}", _key())


@given(st.text(max_size=200))
def test_round_trip_any_text(text: str) -> None:
    sealed = RING.encrypt(text, context="customer.phone")
    assert RING.decrypt(sealed, context="customer.phone") == text
    assert RING.key_id(sealed) == "k2"


def test_ciphertext_hides_the_value_and_differs_each_time() -> None:
    a = RING.encrypt("110105198807160427", context="customer.id_number")
    b = RING.encrypt("110105198807160427", context="customer.id_number")
    assert a != b
    assert "110105" not in a


def test_value_moved_to_another_column_does_not_decrypt() -> None:
    sealed = RING.encrypt("13800138000", context="customer.phone")
    with pytest.raises(CryptoError, match="another column"):
        RING.decrypt(sealed, context="customer.bank_account")


def test_tampered_value_is_refused() -> None:
    sealed = RING.encrypt("13800138000", context="customer.phone")
    prefix, kid, payload = sealed.split(".")
    raw = bytearray(base64.b64decode(payload))
    raw[-1] ^= 1
    with pytest.raises(CryptoError):
        RING.decrypt(f"{prefix}.{kid}.{base64.b64encode(bytes(raw)).decode()}", context="customer.phone")


def test_old_key_still_decrypts_after_a_new_key_is_added() -> None:
    k1 = _key()
    index = _key()
    old = KeyRing.parse(f"k1:{k1}", index)
    sealed = old.encrypt("secret", context="t.c")
    new = KeyRing.parse(f"k2:{_key()},k1:{k1}", index)
    assert new.decrypt(sealed, context="t.c") == "secret"


def test_unknown_key_id_is_refused() -> None:
    other = KeyRing.parse(f"k9:{_key()}", _key())
    with pytest.raises(CryptoError, match="unknown key id"):
        RING.decrypt(other.encrypt("x", context="t.c"), context="t.c")


@pytest.mark.parametrize("spec", ["", "nokey", "k1:not-base64!", f"k1:{base64.b64encode(b'short').decode()}"])
def test_bad_key_configuration_is_refused(spec: str) -> None:
    with pytest.raises(CryptoError):
        KeyRing.parse(spec, _key())


def test_blind_index_is_keyed_normalised_and_per_column() -> None:
    assert RING.blind_index("11010519491231002x", context="c.id") == RING.blind_index(
        " 11010519491231002X", context="c.id"
    )
    assert RING.blind_index("x", context="c.id") != RING.blind_index("x", context="c.phone")
    other = KeyRing.parse(f"k1:{_key()}", _key())
    assert other.blind_index("x", context="c.id") != RING.blind_index("x", context="c.id")


@given(st.binary(max_size=4096))
def test_bytes_round_trip_and_context_binding(data: bytes) -> None:
    sealed = RING.encrypt_bytes(data, context="blob.portrait")
    assert RING.decrypt_bytes(sealed, context="blob.portrait") == data
    with pytest.raises(CryptoError):
        RING.decrypt_bytes(sealed, context="blob.frame")
