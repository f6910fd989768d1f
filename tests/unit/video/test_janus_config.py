"""The generated Janus configuration: secrets on, loopback only, one plugin, ICE as configured."""

from __future__ import annotations

import stat
from pathlib import Path

import msgspec
import pytest

from video.media.janus_config import (
    JanusConfigError,
    JanusSettings,
    StunServer,
    TurnServer,
    generate_secrets,
    write_janus_config,
)


@pytest.fixture
def lib_dir(tmp_path: Path) -> Path:
    """A module folder laid out like Debian's, with the module names Debian installs."""
    lib = tmp_path / "lib"
    for kind, names in {
        "plugins": ["libjanus_videoroom.so", "libjanus_sip.so", "libjanus_streaming.so"],
        "transports": ["libjanus_http.so", "libjanus_websockets.so", "libjanus_pfunix.so"],
        "loggers": ["libjanus_jsonlog.so"],
        "events": [],
    }.items():
        (lib / kind).mkdir(parents=True)
        for name in names:
            (lib / kind / name).write_bytes(b"")
    return lib


def settings(tmp_path: Path, lib_dir: Path, **overrides: object) -> JanusSettings:
    fields = {
        **generate_secrets(),
        "lib_dir": str(lib_dir),
        "recordings_root": str(tmp_path / "rec"),
        "http_port": 18088,
        **overrides,
    }
    return msgspec.convert(fields, JanusSettings)


def test_core_config_carries_the_api_secret_and_only_the_wanted_modules(tmp_path: Path, lib_dir: Path) -> None:
    s = settings(tmp_path, lib_dir, ice_enforce_list=("bl-janus",), sdp_address="192.0.2.1")
    paths = write_janus_config(s, tmp_path / "conf")
    core = paths.core.read_text()
    assert f'api_secret = "{s.api_secret}"' in core
    assert "token_auth" not in core
    assert 'ice_enforce_list = "bl-janus"' in core
    assert 'interface = "192.0.2.1"' in core
    assert 'disable = "libjanus_sip.so,libjanus_streaming.so"' in core
    assert 'disable = "libjanus_pfunix.so,libjanus_websockets.so"' in core
    assert 'disable = "libjanus_jsonlog.so"' in core
    assert "stun_server" not in core
    assert "turn_server" not in core
    assert '"/var"' in core  # recordings are not under /var here, so Janus may not write there


def test_http_transport_binds_loopback_with_the_admin_api_off(tmp_path: Path, lib_dir: Path) -> None:
    paths = write_janus_config(settings(tmp_path, lib_dir), tmp_path / "conf")
    http = paths.http_transport.read_text()
    assert 'ip = "127.0.0.1"' in http
    assert "port = 18088" in http
    assert "admin_http = false" in http
    assert 'acl = "127.,::1"' in http


def test_videoroom_config_requires_the_admin_key_and_has_no_rooms(tmp_path: Path, lib_dir: Path) -> None:
    s = settings(tmp_path, lib_dir)
    videoroom = write_janus_config(s, tmp_path / "conf").videoroom.read_text()
    assert f'admin_key = "{s.room_admin_key}"' in videoroom
    assert "room-" not in videoroom


def test_files_hold_secrets_so_only_the_owner_reads_them(tmp_path: Path, lib_dir: Path) -> None:
    paths = write_janus_config(settings(tmp_path, lib_dir), tmp_path / "conf")
    for path in (paths.core, paths.http_transport, paths.videoroom):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(paths.config_dir.stat().st_mode) == 0o700
    assert paths.recordings_root.is_dir()


def test_production_nat_settings_are_rendered(tmp_path: Path, lib_dir: Path) -> None:
    s = settings(
        tmp_path,
        lib_dir,
        stun_server=StunServer(host="stun.bank.example", port=3478),
        turn_server=TurnServer(host="turn.bank.example", username="janus", password="pw-123"),
        nat_1_1_mapping=("203.0.113.7",),
        rtp_port_range=(20000, 20999),
    )
    core = write_janus_config(s, tmp_path / "conf").core.read_text()
    assert 'stun_server = "stun.bank.example"' in core
    assert 'turn_server = "turn.bank.example"' in core
    assert 'turn_pwd = "pw-123"' in core
    assert 'nat_1_1_mapping = "203.0.113.7"' in core
    assert 'rtp_port_range = "20000-20999"' in core


def test_recordings_under_var_unprotect_var(tmp_path: Path, lib_dir: Path) -> None:
    s = settings(tmp_path, lib_dir, recordings_root="/var/lib/branchless-test-never-created/rec")
    from video.media.janus_config import render_core

    assert '"/var"' not in render_core(s, tmp_path, Path(s.recordings_root))


def test_values_that_could_break_the_file_are_refused(tmp_path: Path, lib_dir: Path) -> None:
    with pytest.raises(JanusConfigError):
        write_janus_config(settings(tmp_path, lib_dir, server_name='x"\nadmin_secret = "y'), tmp_path / "conf")
    with pytest.raises(JanusConfigError):
        write_janus_config(settings(tmp_path, lib_dir, ice_enforce_list=("a,b",)), tmp_path / "conf")


def test_weak_or_exposed_settings_are_refused(tmp_path: Path, lib_dir: Path) -> None:
    with pytest.raises(msgspec.ValidationError, match="at least 16"):
        settings(tmp_path, lib_dir, api_secret="short")
    with pytest.raises(msgspec.ValidationError, match="loopback"):
        settings(tmp_path, lib_dir, http_host="0.0.0.0")


def test_secrets_are_fresh_each_time() -> None:
    first, second = generate_secrets(), generate_secrets()
    assert first.keys() == {"api_secret", "admin_secret", "room_admin_key"}
    assert all(first[k] != second[k] and len(first[k]) >= 32 for k in first)
