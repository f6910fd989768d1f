"""Encrypted evidence storage."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from app.storage import BlobNotFound, BlobStore


def test_put_get_delete(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    data = b"\xff\xd8\xff portrait bytes"
    stored = store.put("portrait", data)
    assert stored.sha256 == hashlib.sha256(data).hexdigest()
    on_disk = (tmp_path / "portrait" / stored.blob_id).read_bytes()
    assert data not in on_disk
    assert store.get("portrait", stored.blob_id) == data
    assert store.delete("portrait", stored.blob_id)
    with pytest.raises(BlobNotFound):
        store.get("portrait", stored.blob_id)
    assert not store.delete("portrait", stored.blob_id)


@pytest.mark.parametrize(
    ("kind", "blob_id"), [("../etc", "a" * 20), ("portrait", "../../x" * 4), ("Portrait", "a" * 20)]
)
def test_paths_cannot_escape(tmp_path: Path, kind: str, blob_id: str) -> None:
    with pytest.raises(ValueError, match="bad blob"):
        BlobStore(tmp_path).get(kind, blob_id)
