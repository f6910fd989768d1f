"""Settings of the whole platform, read once from environment variables at start-up.

Every field is an environment variable of the same name in upper case with the
``BRANCHLESS_`` prefix, except ``DATABASE_URL`` which keeps its conventional name.
A bad value stops start-up with a message that names the variable.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

Environment = Literal["development", "test", "production"]
PositiveInt = Annotated[int, Meta(gt=0)]


class SettingsError(RuntimeError):
    """A setting is missing or malformed; the message names the variable."""


class Settings(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """The platform's configuration: one immutable Struct, validated as a whole."""

    environment: Environment = "development"
    """``production`` refuses to start on generated development secrets."""
    database_url: str = "sqlite:///var/branchless.sqlite3"
    """``sqlite:///PATH`` (embedded) or ``postgresql://USER@HOST:PORT/DB``."""
    var_dir: str = "var"
    """Where the embedded database, development keys and stored files live."""
    host: str = "127.0.0.1"
    port: Annotated[int, Meta(ge=1, le=65535)] = 8000
    secret_key: str = ""
    """Signs CSRF tokens. Empty: generated once under ``var_dir`` (development only)."""
    encryption_keys: str = ""
    """``kid:base64key,kid2:base64key``; the first is used for new values, all decrypt."""
    blind_index_key: str = ""
    """Base64 HMAC key for the keyed hashes that find encrypted values."""
    session_ttl_minutes: PositiveInt = 12 * 60
    api_token_ttl_minutes: PositiveInt = 60
    max_request_body_bytes: PositiveInt = 10 * 1024 * 1024
    cpu_workers: PositiveInt = 2
    """Processes in the pool that runs CPU-heavy work (hashing, faces, signing)."""
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_json: bool = True
    secure_cookies: bool = False
    """Set ``Secure`` on cookies; on whenever the site is served over HTTPS."""
    kyc_case_ttl_minutes: PositiveInt = 60
    """An identity-proofing case not finished within this time expires."""
    kyc_verified_days: PositiveInt = 180
    """A verified identity is reused across loans and claims for this long."""
    kyc_retention_days: PositiveInt = 365
    """Face templates and evidence frames are erased this long after capture."""
    kyc_require_review: bool = True
    """A live, matching case still waits for an account manager's approval."""
    face_engines: str = "mobilefacenet,sface"
    """Face embedding engines that decide, in cascade order (dlib, mobilefacenet, sface)."""
    face_threshold: Annotated[float, Meta(gt=0)] | None = None
    """Override of the calibrated decision threshold (fused, standardised distance)."""
    models_dir: str = "var/models"
    """Where ``make install`` puts the verified face models."""

    # credit hot path
    web_workers: PositiveInt = 1
    """Server processes of ``branchless serve`` (``--workers`` overrides); each has its own pool and caches."""
    token_cache_seconds: Annotated[float, Meta(ge=0)] = 5.0
    """How long a process reuses a resolved bearer or session token; also the longest a
    token revoked in another process stays usable here. 0 turns the cache off."""
    decision_batch_max: PositiveInt = 128
    """Most decisions one group commit writes (one transaction, one audit-lock acquisition)."""
    # --- live video (video/) ---
    janus_url: str = ""
    """Janus's HTTP API (loopback); empty: the development Janus of ``make run`` (var/janus)."""
    janus_api_secret: str = ""
    """Empty in development: read from var/janus/secrets.json, written by ``make run``'s Janus."""
    janus_room_admin_key: str = ""
    janus_recordings_root: str = ""
    """Where Janus writes ``.mjr`` files (same machine); empty: var/janus/recordings."""
    video_allowed_networks: str = "0.0.0.0/0"
    """Comma-separated networks where the analysis peer may have host candidates."""
    video_ice_servers: str = ""
    """Comma-separated STUN/TURN URLs handed to browsers and the analysis peer (coturn)."""
    video_max_sessions: PositiveInt = 8
    """Waiting plus active sessions this app process accepts; beyond it a join gets 503 busy."""
    video_sample_fps: Annotated[float, Meta(ge=0.5, le=10.0)] = 3.0
    video_monitor_interval_s: Annotated[float, Meta(ge=1.0)] = 10.0
    """After the first verdict, how often the live face distance is refreshed for the manager."""
    video_recording_retention_days: PositiveInt = 5 * 365
    video_queue_timeout_minutes: PositiveInt = 30
    video_session_max_minutes: PositiveInt = 60
    video_reconnect_grace_s: PositiveInt = 30
    """A participant whose connection dropped may rejoin within this time before the session ends."""

    @property
    def is_postgres(self) -> bool:
        return self.database_url.startswith(("postgresql://", "postgres://"))

    @property
    def sqlite_path(self) -> Path:
        return Path(self.database_url.removeprefix("sqlite:///"))

    def __post_init__(self) -> None:
        if not (self.is_postgres or self.database_url.startswith("sqlite:///")):
            raise ValueError("DATABASE_URL must start with sqlite:/// or postgresql://")
        if self.environment == "production" and not (self.secret_key and self.encryption_keys and self.blind_index_key):
            raise ValueError(
                "production needs BRANCHLESS_SECRET_KEY, BRANCHLESS_ENCRYPTION_KEYS and BRANCHLESS_BLIND_INDEX_KEY"
            )


_FIELD_ENV = {name: f"BRANCHLESS_{name.upper()}" for name in Settings.__struct_fields__}
_FIELD_ENV["database_url"] = "DATABASE_URL"


def env_name(field: str) -> str:
    """The environment variable that sets ``field``."""
    return _FIELD_ENV[field]


def load_settings(environ: dict[str, str] | None = None) -> Settings:
    """Read and validate the settings; raise ``SettingsError`` naming the bad variable."""
    environ = dict(os.environ if environ is None else environ)
    raw: dict[str, str] = {f: environ[v] for f, v in _FIELD_ENV.items() if v in environ}
    try:
        return msgspec.convert(raw, Settings, strict=False)
    except msgspec.ValidationError as exc:
        message = str(exc)
        for field, var in _FIELD_ENV.items():
            if f"$.{field}" in message:
                raise SettingsError(f"{var}: {message.split(' - at ', maxsplit=1)[0]}") from None
        hint = "DATABASE_URL" if "DATABASE_URL" in message else "settings"
        raise SettingsError(f"{hint}: {message}") from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read on first use."""
    return load_settings()
