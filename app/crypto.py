"""Field encryption for personal data: AES-256-GCM with a key id on every value,
and keyed hashes (HMAC-SHA256) to find a value without decrypting the table.

A stored value reads ``v1.<kid>.<base64(nonce || ciphertext+tag)>``. The key id
lets old values decrypt after a new key becomes active; ``branchless keys
rotate`` re-encrypts them under the active key. The associated data binds each
ciphertext to its column, so a value copied into another column fails to decrypt.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from piccolo.table import Table

from app.secrets import load_secrets
from app.settings import get_settings

_PREFIX = "v1"


class CryptoError(RuntimeError):
    """A value cannot be decrypted: unknown key id, wrong column, or tampered."""


def _decode_key(kid: str, text: str) -> bytes:
    try:
        key = base64.b64decode(text, validate=True)
    except binascii.Error as exc:
        raise CryptoError(f"encryption key {kid!r} is not base64") from exc
    if len(key) != 32:
        raise CryptoError(f"encryption key {kid!r} must be 32 bytes, got {len(key)}")
    return key


@dataclass(frozen=True)
class KeyRing:
    """Encryption keys by id (the first is active) and the blind-index key."""

    active_kid: str
    keys: dict[str, bytes]
    index_key: bytes

    @classmethod
    def parse(cls, encryption_keys: str, blind_index_key: str) -> KeyRing:
        keys: dict[str, bytes] = {}
        for item in filter(None, (p.strip() for p in encryption_keys.split(","))):
            kid, sep, text = item.partition(":")
            if not sep or not kid or "." in kid:
                raise CryptoError("encryption keys read 'kid:base64key,...'")
            keys[kid] = _decode_key(kid, text)
        if not keys:
            raise CryptoError("no encryption key configured")
        active = next(iter(keys))
        return cls(active, keys, _decode_key("blind-index", blind_index_key))

    def encrypt(self, plaintext: str, *, context: str) -> str:
        nonce = os.urandom(12)
        sealed = AESGCM(self.keys[self.active_kid]).encrypt(nonce, plaintext.encode(), context.encode())
        return f"{_PREFIX}.{self.active_kid}.{base64.b64encode(nonce + sealed).decode()}"

    def decrypt(self, stored: str, *, context: str) -> str:
        try:
            prefix, kid, payload = stored.split(".", 2)
        except ValueError:
            raise CryptoError("not an encrypted value") from None
        if prefix != _PREFIX or kid not in self.keys:
            raise CryptoError(f"unknown key id {kid!r}")
        blob = base64.b64decode(payload)
        try:
            return AESGCM(self.keys[kid]).decrypt(blob[:12], blob[12:], context.encode()).decode()
        except InvalidTag:
            raise CryptoError("value was altered or belongs to another column") from None

    def encrypt_bytes(self, data: bytes, *, context: str) -> bytes:
        """Binary form for files: ``v1.<kid>.`` header, then nonce and ciphertext."""
        nonce = os.urandom(12)
        sealed = AESGCM(self.keys[self.active_kid]).encrypt(nonce, data, context.encode())
        return f"{_PREFIX}.{self.active_kid}.".encode() + nonce + sealed

    def decrypt_bytes(self, blob: bytes, *, context: str) -> bytes:
        try:
            prefix, kid, rest = blob.split(b".", 2)
        except ValueError:
            raise CryptoError("not an encrypted blob") from None
        name = kid.decode(errors="replace")
        if prefix.decode(errors="replace") != _PREFIX or name not in self.keys:
            raise CryptoError(f"unknown key id {name!r}")
        try:
            return AESGCM(self.keys[name]).decrypt(rest[:12], rest[12:], context.encode())
        except InvalidTag:
            raise CryptoError("blob was altered or belongs to another kind") from None

    @staticmethod
    def key_id(stored: str) -> str:
        return stored.split(".", 2)[1]

    def blind_index(self, value: str, *, context: str) -> str:
        """Keyed hash of the normalised value: equal inputs give equal hashes,
        but without the key nobody can test guesses against the table."""
        normal = unicodedata.normalize("NFKC", value).strip().upper().replace(" ", "")
        return hmac.new(self.index_key, f"{context}\x00{normal}".encode(), hashlib.sha256).hexdigest()


@lru_cache(maxsize=1)
def keyring() -> KeyRing:
    """The process's key ring, built from the settings (or development secrets)."""
    found = load_secrets(get_settings())
    return KeyRing.parse(found.encryption_keys, found.blind_index_key)


@dataclass(frozen=True)
class EncryptedColumn:
    """A column holding ``KeyRing.encrypt`` output; its context is ``table.column``."""

    table: type[Table]
    column: str

    @property
    def context(self) -> str:
        return f"{self.table._meta.tablename}.{self.column.removesuffix('_enc')}"


_ENCRYPTED: list[EncryptedColumn] = []


def register_encrypted(table: type[Table], *columns: str) -> None:
    """Declare encrypted columns so that key rotation finds them."""
    for column in columns:
        entry = EncryptedColumn(table, column)
        if entry not in _ENCRYPTED:
            _ENCRYPTED.append(entry)


def encrypted_columns() -> list[EncryptedColumn]:
    return list(_ENCRYPTED)


def seal(value: str | None, table: type[Table], column: str) -> str | None:
    """Encrypt ``value`` for ``table.column`` (``None`` stays ``None``)."""
    if value is None:
        return None
    return keyring().encrypt(value, context=EncryptedColumn(table, column).context)


def unseal(stored: str | None, table: type[Table], column: str) -> str | None:
    if stored is None:
        return None
    return keyring().decrypt(stored, context=EncryptedColumn(table, column).context)


def lookup_hash(value: str, table: type[Table], column: str) -> str:
    """The keyed hash that finds ``value`` in ``table.column``'s ``*_hash`` twin."""
    return keyring().blind_index(value, context=EncryptedColumn(table, column).context)


async def rotate_keys(batch: int = 500) -> dict[str, int]:
    """Re-encrypt every registered value not under the active key; return counts."""
    from app.db import transaction

    ring = keyring()
    counts: dict[str, int] = {}
    for col in encrypted_columns():
        table, column = col.table, col.column
        done = 0
        last_id = 0
        pk = table._meta.primary_key
        while True:
            rows = await (
                table.select(pk, getattr(table, column))
                .where((pk > last_id) & getattr(table, column).is_not_null())
                .order_by(pk)
                .limit(batch)
            )
            if not rows:
                break
            async with transaction():
                for row in rows:
                    stored = row[column]
                    if ring.key_id(stored) != ring.active_kid:
                        fresh = ring.encrypt(ring.decrypt(stored, context=col.context), context=col.context)
                        await table.update({getattr(table, column): fresh}).where(pk == row[pk._meta.name])
                        done += 1
            last_id = rows[-1][pk._meta.name]
        counts[col.context] = done
    return counts
