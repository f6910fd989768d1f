"""Encrypted file storage for evidence: portraits, video frames, signed PDFs, recordings.

Each object is sealed with the key ring (AES-256-GCM, key id in the header, bound
to its kind) and stored under ``var/blobs/<kind>/<id>``; the database keeps only
the id and a SHA-256 of the plaintext, so evidence can be checked later without
trusting the disk. Erasure deletes the file.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from app.crypto import keyring
from app.settings import get_settings

_KIND = re.compile(r"^[a-z][a-z0-9_]{1,31}$")
_ID = re.compile(r"^[A-Za-z0-9_-]{16,64}$")


class BlobNotFound(LookupError):
    pass


@dataclass(frozen=True)
class StoredBlob:
    blob_id: str
    sha256: str
    size: int


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, kind: str, blob_id: str) -> Path:
        if not _KIND.match(kind) or not _ID.match(blob_id):
            raise ValueError("bad blob kind or id")
        return self.root / kind / blob_id

    def put(self, kind: str, data: bytes) -> StoredBlob:
        blob_id = secrets.token_urlsafe(24)
        path = self._path(kind, blob_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        sealed = keyring().encrypt_bytes(data, context=f"blob.{kind}")
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(sealed)
        tmp.replace(path)
        return StoredBlob(blob_id, hashlib.sha256(data).hexdigest(), len(data))

    def get(self, kind: str, blob_id: str) -> bytes:
        path = self._path(kind, blob_id)
        try:
            sealed = path.read_bytes()
        except FileNotFoundError:
            raise BlobNotFound(f"{kind}/{blob_id}") from None
        return keyring().decrypt_bytes(sealed, context=f"blob.{kind}")

    def delete(self, kind: str, blob_id: str) -> bool:
        try:
            self._path(kind, blob_id).unlink()
            return True
        except FileNotFoundError:
            return False


def blob_store() -> BlobStore:
    return BlobStore(Path(get_settings().var_dir) / "blobs")
