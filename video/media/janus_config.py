"""Janus configuration generated from the platform's settings, written under ``var/``.

Why generate rather than ship ``/etc/janus``: Debian's defaults load every plugin and
transport (WebSockets on all interfaces, SIP, streaming ...), carry a well-known admin
secret and a demo room. The platform needs exactly one plugin (VideoRoom), one transport
(HTTP on loopback), a fresh API secret, and ICE limited to the interfaces it names.
Everything not wanted is disabled by listing the installed modules, so a Janus upgrade
that adds a plugin cannot silently open something.
"""

from __future__ import annotations

import os
import re
import secrets
from pathlib import Path
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

DEBIAN_LIB_DIR = Path("/usr/lib/x86_64-linux-gnu/janus")
"""Where Debian's ``janus`` package installs plugins, transports, loggers and event handlers."""

VIDEOROOM_PLUGIN = "libjanus_videoroom.so"
HTTP_TRANSPORT = "libjanus_http.so"

Port = Annotated[int, Meta(ge=1, le=65535)]
_SAFE_VALUE = re.compile(r"^[^\"\\\n\r]*$")
_SYSTEM_FOLDERS: tuple[str, ...] = ("/bin", "/boot", "/dev", "/etc", "/initrd", "/lib", "/lib32", "/lib64")
_SYSTEM_FOLDERS += ("/proc", "/sbin", "/sys", "/usr")


class JanusConfigError(ValueError):
    """A setting cannot be written safely into a Janus configuration file."""


class StunServer(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A STUN server Janus asks for its public address (production behind NAT only)."""

    host: str
    port: Port = 3478


class TurnServer(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A TURN server (coturn) Janus may relay through when no direct path exists."""

    host: str
    port: Port = 3478
    transport: Literal["udp", "tcp", "tls"] = "udp"
    username: str = ""
    password: str = ""


class JanusSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Everything the generated configuration depends on; built from app settings or by tests.

    Secrets are required fields (no defaults) so that nobody runs Janus with a
    secret copied from a sample file; ``generate_secrets()`` makes fresh ones.
    """

    api_secret: str
    """Every Janus API request must carry it; only the app (never a browser) knows it."""
    admin_secret: str
    """For the admin API, which stays off unless ``admin_port`` is set."""
    room_admin_key: str
    """VideoRoom ``admin_key``: without it nobody can create rooms, even with the API secret."""
    http_host: str = "127.0.0.1"
    http_port: Port = 8088
    admin_port: Port | None = None
    ice_enforce_list: tuple[str, ...] = ()
    """Interfaces or addresses (prefixes allowed) ICE may use; empty means all but the ignored."""
    ice_ignore_list: tuple[str, ...] = ("vmnet",)
    sdp_address: str | None = None
    """Janus's ``interface``: the address in its SDP ``c=`` line. Janus guesses it by routing
    towards a public address, which fails where there is no default route (the test namespace)."""
    nat_1_1_mapping: tuple[str, ...] = ()
    """Public addresses to advertise instead of private ones (1:1 NAT, e.g. a cloud VM)."""
    stun_server: StunServer | None = None
    turn_server: TurnServer | None = None
    rtp_port_range: tuple[Port, Port] | None = None
    """Bounds the UDP ports media uses, so a firewall can open exactly those."""
    ipv6: bool = False
    session_timeout_s: Annotated[int, Meta(ge=0)] = 60
    """A Janus session without requests (or keepalives) for this long is destroyed."""
    debug_level: Annotated[int, Meta(ge=0, le=7)] = 4
    server_name: str = "branchless-janus"
    lib_dir: str = str(DEBIAN_LIB_DIR)
    recordings_root: str = "var/janus/recordings"
    """Parent of every room's ``rec_dir``; the folder is created with the configuration."""

    def __post_init__(self) -> None:
        for name in ("api_secret", "admin_secret", "room_admin_key"):
            if len(getattr(self, name)) < 16:
                raise ValueError(f"{name} must be at least 16 characters")
        if self.http_host not in {"127.0.0.1", "::1"}:
            raise ValueError("Janus's HTTP API must stay on loopback; the app brokers every browser request")
        if self.rtp_port_range is not None and self.rtp_port_range[0] > self.rtp_port_range[1]:
            raise ValueError("rtp_port_range must be (low, high)")


class JanusConfigPaths(msgspec.Struct, frozen=True, kw_only=True):
    """Where the generated files are, for the process runner and for diagnostics."""

    config_dir: Path
    core: Path
    http_transport: Path
    videoroom: Path
    recordings_root: Path


def generate_secrets() -> dict[str, str]:
    """Fresh random secrets for ``JanusSettings`` (development and tests)."""
    return {
        "api_secret": secrets.token_urlsafe(32),
        "admin_secret": secrets.token_urlsafe(32),
        "room_admin_key": secrets.token_urlsafe(32),
    }


def _q(value: str) -> str:
    """Quote a string for libconfig; refuse what could break out of the quotes."""
    if not _SAFE_VALUE.match(value):
        raise JanusConfigError(f"unsafe character in configuration value {value!r}")
    return f'"{value}"'


def _csv(values: tuple[str, ...]) -> str:
    for value in values:
        if "," in value:
            raise JanusConfigError(f"a list item may not contain a comma: {value!r}")
    return _q(",".join(values))


def _disabled_modules(folder: Path, keep: set[str]) -> str:
    """Every installed module of a kind except ``keep``, as Janus's ``disable`` list."""
    if not folder.is_dir():
        return ""
    names = sorted(p.name for p in folder.iterdir() if p.name.endswith(".so") and p.name not in keep)
    return ",".join(names)


def _protected_folders(recordings_root: Path) -> list[str]:
    """Janus refuses to write recordings under these; ``/var`` only when we do not record there."""
    folders = list(_SYSTEM_FOLDERS)
    if not str(recordings_root).startswith("/var/"):
        folders.append("/var")
    return folders


_HEADER = "# Generated by video/media/janus_config.py: do not edit, regenerate.\n"


def _block(name: str, lines: list[str]) -> str:
    body = "".join(f"\t{line}\n" for line in lines)
    return f"{name}: {{\n{body}}}\n"


def render_core(settings: JanusSettings, config_dir: Path, recordings_root: Path) -> str:
    """``janus.jcfg``: secrets, logging, media and NAT/ICE settings, enabled modules."""
    lib = Path(settings.lib_dir)
    protected = ", ".join(_q(f) for f in _protected_folders(recordings_root))
    general = [
        f"configs_folder = {_q(str(config_dir))}",
        f"plugins_folder = {_q(str(lib / 'plugins'))}",
        f"transports_folder = {_q(str(lib / 'transports'))}",
        f"events_folder = {_q(str(lib / 'events'))}",
        f"loggers_folder = {_q(str(lib / 'loggers'))}",
        f"debug_level = {settings.debug_level}",
        "debug_timestamps = true",
        "debug_colors = false",
        f"api_secret = {_q(settings.api_secret)}",
        f"admin_secret = {_q(settings.admin_secret)}",
        f"server_name = {_q(settings.server_name)}",
        f"session_timeout = {settings.session_timeout_s}",
        f"protected_folders = [{protected}]",
    ]
    if settings.sdp_address:
        general.append(f"interface = {_q(settings.sdp_address)}")
    media = [f"ipv6 = {str(settings.ipv6).lower()}"]
    if settings.rtp_port_range is not None:
        media.append(f'rtp_port_range = "{settings.rtp_port_range[0]}-{settings.rtp_port_range[1]}"')
    nat = ["nice_debug = false", "ignore_mdns = true"]
    if settings.ice_enforce_list:
        nat.append(f"ice_enforce_list = {_csv(settings.ice_enforce_list)}")
    if settings.ice_ignore_list:
        nat.append(f"ice_ignore_list = {_csv(settings.ice_ignore_list)}")
    if settings.nat_1_1_mapping:
        nat.append(f"nat_1_1_mapping = {_csv(settings.nat_1_1_mapping)}")
    if settings.stun_server is not None:
        nat += [f"stun_server = {_q(settings.stun_server.host)}", f"stun_port = {settings.stun_server.port}"]
    if settings.turn_server is not None:
        turn = settings.turn_server
        nat += [
            f"turn_server = {_q(turn.host)}",
            f"turn_port = {turn.port}",
            f"turn_type = {_q(turn.transport)}",
            f"turn_user = {_q(turn.username)}",
            f"turn_pwd = {_q(turn.password)}",
        ]
    modules = {
        "plugins": [f"disable = {_q(_disabled_modules(lib / 'plugins', {VIDEOROOM_PLUGIN}))}"],
        "transports": [f"disable = {_q(_disabled_modules(lib / 'transports', {HTTP_TRANSPORT}))}"],
        "loggers": [f"disable = {_q(_disabled_modules(lib / 'loggers', set()))}"],
        "events": ["broadcast = false"],
    }
    blocks = [_block("general", general), _block("certificates", []), _block("media", media), _block("nat", nat)]
    blocks += [_block(name, lines) for name, lines in modules.items()]
    return _HEADER + "".join(blocks)


def render_http_transport(settings: JanusSettings) -> str:
    """``janus.transport.http.jcfg``: plain HTTP on loopback only; admin API off unless asked."""
    general = [
        'json = "compact"',
        'base_path = "/janus"',
        "http = true",
        f"port = {settings.http_port}",
        f"ip = {_q(settings.http_host)}",
        "https = false",
        'acl = "127.,::1"',
    ]
    admin = ["admin_http = false", "admin_https = false"]
    if settings.admin_port is not None:
        admin = [
            "admin_http = true",
            "admin_https = false",
            f"admin_port = {settings.admin_port}",
            f"admin_ip = {_q(settings.http_host)}",
            'admin_base_path = "/admin"',
            'admin_acl = "127.,::1"',
        ]
    return _HEADER + _block("general", general) + _block("admin", admin) + _block("cors", [])


def render_videoroom(settings: JanusSettings) -> str:
    """``janus.plugin.videoroom.jcfg``: no static rooms; creating one needs the admin key."""
    general = [f"admin_key = {_q(settings.room_admin_key)}", "lock_rtp_forward = true", "events = false"]
    return _HEADER + _block("general", general)


def write_janus_config(settings: JanusSettings, config_dir: Path) -> JanusConfigPaths:
    """Write the three configuration files (mode 0600: they hold secrets) and create folders.

    Idempotent: rewriting with the same settings produces the same files.
    """
    config_dir = config_dir.resolve()
    config_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(config_dir, 0o700)
    recordings_root = Path(settings.recordings_root).resolve()
    recordings_root.mkdir(parents=True, exist_ok=True)
    files = {
        "janus.jcfg": render_core(settings, config_dir, recordings_root),
        "janus.transport.http.jcfg": render_http_transport(settings),
        "janus.plugin.videoroom.jcfg": render_videoroom(settings),
    }
    for name, text in files.items():
        path = config_dir / name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
    return JanusConfigPaths(
        config_dir=config_dir,
        core=config_dir / "janus.jcfg",
        http_transport=config_dir / "janus.transport.http.jcfg",
        videoroom=config_dir / "janus.plugin.videoroom.jcfg",
        recordings_root=recordings_root,
    )
