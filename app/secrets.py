"""Development secrets: generated once under ``var/`` when the environment sets none.

Production must set them (the settings refuse to start otherwise); a developer's
``make run`` gets stable keys without configuring anything.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from app.settings import Settings


@dataclass(frozen=True)
class Secrets:
    secret_key: str
    encryption_keys: str
    blind_index_key: str


def _new_key() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode()


def load_secrets(settings: Settings) -> Secrets:
    """The configured secrets, falling back to ``var/dev-secrets.json``."""
    if settings.secret_key and settings.encryption_keys and settings.blind_index_key:
        return Secrets(settings.secret_key, settings.encryption_keys, settings.blind_index_key)
    path = Path(settings.var_dir) / "dev-secrets.json"
    if path.exists():
        stored = json.loads(path.read_text())
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        stored = {
            "secret_key": secrets.token_urlsafe(32),
            "encryption_keys": f"k1:{_new_key()}",
            "blind_index_key": _new_key(),
        }
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(stored, fh)
    return Secrets(
        settings.secret_key or stored["secret_key"],
        settings.encryption_keys or stored["encryption_keys"],
        settings.blind_index_key or stored["blind_index_key"],
    )
