"""Pure parts of the media core: frame sampling, ICE address policy, Janus events and errors, .mjr headers."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import aioice.ice
import pytest

from video.media import ice
from video.media.analysis_peer import FrameSampler
from video.media.errors import (
    IcePolicyError,
    JanusError,
    JanusSessionNotFound,
    JanusUnauthorized,
    RecordingError,
    VideoRoomNoSuchRoom,
    VideoRoomUnauthorized,
    core_error,
    videoroom_error,
)
from video.media.janus_client import JanusEvent
from video.media.recordings import group_recordings, read_mjr_header
from video.media.videoroom import end_reason, new_room_credentials


def kept(fps: float, times: list[float]) -> list[float]:
    sampler = FrameSampler(fps)
    return [t for t in times if sampler.take(t)]


def test_sampler_keeps_the_configured_rate_from_30_fps() -> None:
    times = [i / 30 for i in range(300)]  # 10 s
    assert len(kept(3.0, times)) == 30
    assert len(kept(5.0, times)) == 50
    assert len(kept(2.0, times)) == 20


def test_sampler_tolerates_jitter_and_clock_jumps() -> None:
    jittered = [i / 30 + (0.004 if i % 2 else -0.004) for i in range(90)]
    assert 8 <= len(kept(3.0, jittered)) <= 10
    jumped = [i / 30 for i in range(30)] + [5000 + i / 30 for i in range(30)]
    assert len(kept(3.0, jumped)) == 6  # restarts on the jump instead of waiting 5000 s


SDP = """v=0
m=video 9 UDP/TLS/RTP/SAVPF 97
a=candidate:abc 1 udp 2130706431 192.0.2.2 40000 typ host
a=candidate:def 1 udp 1694498815 198.51.100.9 40001 typ srflx raddr 192.0.2.2 rport 40000
"""


def test_candidates_outside_the_allowed_networks_are_refused() -> None:
    assert ice.sdp_candidates(SDP) == [("192.0.2.2", "host"), ("198.51.100.9", "srflx")]
    with pytest.raises(IcePolicyError, match=r"198\.51\.100\.9"):
        ice.check_sdp_candidates(SDP, ["192.0.2.0/24"])
    ice.check_sdp_candidates(SDP, ["192.0.2.0/24", "198.51.100.0/24"])
    with pytest.raises(IcePolicyError, match="no ICE candidate"):
        ice.check_sdp_candidates("v=0\n", ["192.0.2.0/24"])


def test_host_address_restriction_filters_aioice_and_can_be_lifted() -> None:
    everything = aioice.ice.get_host_addresses(True, False)
    try:
        ice.restrict_host_addresses(["192.0.2.0/24"])
        assert all(a.startswith("192.0.2.") for a in aioice.ice.get_host_addresses(True, False))
        ice.restrict_host_addresses(["0.0.0.0/0"])
        assert aioice.ice.get_host_addresses(True, False) == everything
    finally:
        ice.lift_host_address_restriction()
    assert aioice.ice.get_host_addresses(True, False) == everything


def test_rtc_configuration_never_falls_back_to_a_public_stun_server() -> None:
    assert ice.rtc_configuration().iceServers == []
    turn = ice.rtc_configuration(["turn:turn.bank.example:3478"], username="u", credential="p")
    assert [s.urls for s in turn.iceServers or []] == ["turn:turn.bank.example:3478"]


@pytest.mark.parametrize(
    ("event", "feed", "expected"),
    [
        (JanusEvent(janus="event", data={"videoroom": "destroyed", "room": 1}), None, "room_destroyed"),
        (JanusEvent(janus="event", data={"videoroom": "event", "unpublished": 7}), 7, "publisher_left"),
        (JanusEvent(janus="event", data={"videoroom": "event", "leaving": 8}), 7, None),
        (JanusEvent(janus="hangup", data={"reason": "DTLS alert"}), 7, "hangup"),
        (JanusEvent(janus="session-lost", data={}), None, "session_lost"),
        (JanusEvent(janus="media", data={"receiving": True}), 7, None),
    ],
)
def test_end_reasons(event: JanusEvent, feed: int | None, expected: str | None) -> None:
    assert end_reason(event, feed) == expected


def test_janus_error_codes_map_to_specific_exceptions() -> None:
    assert isinstance(core_error(403, "x"), JanusUnauthorized)
    assert isinstance(core_error(458, "x"), JanusSessionNotFound)
    assert type(core_error(490, "x")) is JanusError
    assert isinstance(videoroom_error(426, "x"), VideoRoomNoSuchRoom)
    error = videoroom_error(433, "Unauthorized (wrong pin)")
    assert isinstance(error, VideoRoomUnauthorized)
    assert error.code == 433
    assert "wrong pin" in str(error)


def test_room_credentials_are_random_safe_ids_with_their_own_folder(tmp_path: Path) -> None:
    rooms = [new_room_credentials(tmp_path) for _ in range(20)]
    assert len({r.room_id for r in rooms}) == 20
    assert all(0 < r.room_id < 2**53 for r in rooms)
    assert len({r.secret for r in rooms}) == 20
    assert len({r.pin for r in rooms}) == 20
    assert all(Path(r.rec_dir).is_dir() for r in rooms)
    assert all(Path(r.rec_dir).parent == tmp_path.resolve() for r in rooms)


def write_mjr(path: Path, header: dict[str, object], payload: bytes = b"MEET" + b"\0" * 40) -> Path:
    body = json.dumps(header).encode()
    path.write_bytes(b"MJR00002" + struct.pack(">H", len(body)) + body + payload)
    return path


def test_mjr_headers_and_grouping_by_participant(tmp_path: Path) -> None:
    write_mjr(tmp_path / "customer-video-1.mjr", {"t": "v", "c": "vp8", "s": 10, "u": 20})
    write_mjr(tmp_path / "customer-audio-0.mjr", {"t": "a", "c": "opus", "s": 10, "u": 15})
    write_mjr(tmp_path / "manager-video-1.mjr", {"t": "v", "c": "vp8", "s": 11, "u": 30})
    write_mjr(tmp_path / "manager-audio-0.mjr", {"t": "a", "c": "opus", "s": 11, "u": 0}, payload=b"")  # no packet
    (tmp_path / "manager-data-2.mjr").write_bytes(b"MJR00002")  # what Janus leaves when nothing came
    header = read_mjr_header(tmp_path / "customer-video-1.mjr")
    assert (header.kind, header.codec, header.first_packet_us) == ("video", "vp8", 20)
    groups = {g.base: g for g in group_recordings(tmp_path)}
    assert set(groups) == {"customer", "manager"}
    assert groups["customer"].audio is not None
    assert groups["customer"].video is not None
    assert groups["manager"].audio is None  # opened but never written: ignored


def test_a_file_that_is_not_a_janus_recording_is_refused(tmp_path: Path) -> None:
    (tmp_path / "x-video-1.mjr").write_bytes(b"RIFF....")
    with pytest.raises(RecordingError, match="not a Janus MJR"):
        read_mjr_header(tmp_path / "x-video-1.mjr")
