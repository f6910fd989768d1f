"""Turn Janus's ``.mjr`` recordings of a finished session into checksummed WebM evidence files.

Janus writes one ``.mjr`` per published stream (``BASE-video-1.mjr``, ``BASE-audio-0.mjr``).
``janus-pp-rec`` (Debian ``janus-tools``) turns each into a playable file without
re-encoding; we then remux a participant's video (VP8) and audio (Opus) into one WebM,
aligned on the time each stream's first packet was written, compute its SHA-256, and
read it back with PyAV, so what we store is proven playable. Safe to run again: a file
whose sidecar manifest names the same sources and checksum is not converted twice.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import os
import re
import shutil
import struct
import subprocess
import tempfile
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

import av
import msgspec
from av.packet import Packet

from video.media.errors import RecordingError

_NAME = re.compile(r"^(?P<base>.+)-(?P<kind>audio|video|data)-(?P<mindex>\d+)\.mjr$")
_KINDS = {"a": "audio", "v": "video", "d": "data"}


class MjrHeader(msgspec.Struct, frozen=True, kw_only=True):
    path: str
    kind: Literal["audio", "video", "data"]
    codec: str
    created_us: int
    """When Janus opened the file (epoch microseconds)."""
    first_packet_us: int
    """When the first packet was written: what aligns audio with video."""
    size_bytes: int
    data_bytes: int
    """Bytes after the header: 0 when the stream never carried a packet."""


class ParticipantRecording(msgspec.Struct, frozen=True, kw_only=True):
    """The ``.mjr`` files of one publisher (one recording base name)."""

    base: str
    video: MjrHeader | None
    audio: MjrHeader | None


class RecordingInfo(msgspec.Struct, frozen=True, kw_only=True):
    """A converted recording as stored: where, its checksum, and what PyAV read back."""

    base: str
    path: str
    sha256: str
    size_bytes: int
    duration_s: float
    video_codec: str | None
    width: int | None
    height: int | None
    video_frames: int
    """Video packets in the file (one per frame for VP8)."""
    fps: float | None
    audio_codec: str | None
    audio_packets: int
    sources: dict[str, int]
    """Source ``.mjr`` names and sizes: a rerun with other sources converts again."""


def read_mjr_header(path: Path) -> MjrHeader:
    """Parse an ``MJR00002`` header (magic, 2-byte length, JSON ``{"t","c","s","u"}``)."""
    with path.open("rb") as handle:
        magic = handle.read(8)
        if magic != b"MJR00002":
            raise RecordingError(f"{path.name}: not a Janus MJR v2 recording ({magic!r})")
        prefix = handle.read(2)
        if len(prefix) < 2:  # Janus writes the header with the first packet: none ever came
            return MjrHeader(
                path=str(path), kind="data", codec="", created_us=0, first_packet_us=0, size_bytes=8, data_bytes=0
            )
        (length,) = struct.unpack(">H", prefix)
        header = json.loads(handle.read(length))
    kind = _KINDS.get(str(header.get("t")))
    if kind is None:
        raise RecordingError(f"{path.name}: unknown stream type {header.get('t')!r}")
    return MjrHeader(
        path=str(path),
        kind=kind,  # type: ignore[arg-type]
        codec=str(header.get("c")),
        created_us=int(header.get("s", 0)),
        first_packet_us=int(header.get("u", 0)),
        size_bytes=path.stat().st_size,
        data_bytes=path.stat().st_size - 10 - length,
    )


def group_recordings(rec_dir: Path) -> list[ParticipantRecording]:
    """One entry per recording base, with its first video and first audio stream (by m-line)."""
    grouped: dict[str, list[tuple[int, MjrHeader]]] = {}
    for path in sorted(rec_dir.glob("*.mjr")):
        match = _NAME.match(path.name)
        if match is None:
            continue
        header = read_mjr_header(path)
        if header.data_bytes <= 0 or header.first_packet_us == 0:
            continue  # opened but never got a packet (e.g. a muted or refused stream)
        grouped.setdefault(match["base"], []).append((int(match["mindex"]), header))
    result = []
    for base, items in sorted(grouped.items()):
        items.sort(key=lambda item: item[0])
        video = next((h for _, h in items if h.kind == "video"), None)
        audio = next((h for _, h in items if h.kind == "audio"), None)
        result.append(ParticipantRecording(base=base, video=video, audio=audio))
    return result


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _pp_rec(source: str, target: Path, timeout_s: float) -> None:
    binary = shutil.which("janus-pp-rec")
    if binary is None:
        raise RecordingError("janus-pp-rec is missing: apt-get install janus-tools")
    result = subprocess.run(  # noqa: S603 - fixed binary, our own paths
        [binary, "-d", "2", source, str(target)], capture_output=True, text=True, timeout=timeout_s, check=False
    )
    if result.returncode != 0 or not target.exists() or target.stat().st_size == 0:
        raise RecordingError(
            f"janus-pp-rec failed on {Path(source).name}: {result.stdout[-500:]}{result.stderr[-500:]}"
        )


def _packets(container: av.container.InputContainer, offset_s: float) -> Iterator[tuple[float, Packet[Any]]]:
    """The stream's packets re-timed to start at ``offset_s``, timestamps strictly increasing.

    RTP from real clients has glitches (clock jumps, repeated timestamps) that Janus records
    faithfully; a muxer rejects a non-increasing timestamp, so such a packet is nudged one
    tick after its predecessor instead of failing the whole evidence file.
    """
    stream = container.streams[0]
    time_base = stream.time_base or Fraction(1, 1000)
    shift: int | None = None
    last: int | None = None
    for packet in container.demux(stream):
        if packet.dts is None:
            continue
        if shift is None:
            shift = round(offset_s / time_base) - packet.dts
        dts = packet.dts + shift
        if last is not None and dts <= last:
            dts = last + 1
        pts = max(dts, packet.pts + shift) if packet.pts is not None else dts
        packet.dts, packet.pts, last = dts, pts, dts
        yield float(dts * time_base), packet


def _tagged(
    container: av.container.InputContainer, offset_s: float, out_stream: av.stream.Stream, order: int
) -> Iterator[tuple[float, int, Packet[Any], av.stream.Stream]]:
    for time_s, packet in _packets(container, offset_s):
        yield time_s, order, packet, out_stream


def _remux(inputs: list[tuple[Path, float]], target: Path) -> None:
    """Interleave the streams by time into one WebM, without decoding anything."""
    containers = [av.open(str(path)) for path, _ in inputs]
    try:
        with av.open(str(target), "w", format="webm") as out:
            sources = [
                _tagged(container, offset, out.add_stream_from_template(container.streams[0]), order)
                for order, (container, (_, offset)) in enumerate(zip(containers, inputs, strict=True))
            ]
            for _, _, packet, out_stream in heapq.merge(*sources, key=lambda item: (item[0], item[1])):
                packet.stream = out_stream
                out.mux(packet)
    finally:
        for container in containers:
            container.close()


def probe(path: Path) -> tuple[float, str | None, int | None, int | None, int, float | None, str | None, int]:
    """Read a WebM back: duration, video codec/size/frames/fps (first frame decoded), audio codec/packets."""
    with av.open(str(path)) as container:
        video = container.streams.video[0] if container.streams.video else None
        audio = container.streams.audio[0] if container.streams.audio else None
        frames = audio_packets = 0
        last = 0.0
        decoded_one = video is None
        attempts = 0
        for packet in container.demux():
            if packet.dts is None or packet.size == 0:
                continue
            last = max(last, float((packet.pts or packet.dts) * packet.time_base))
            if packet.stream is video:
                frames += 1
                if not decoded_one and attempts < 120:  # decoders may buffer a few packets
                    attempts += 1
                    decoded_one = bool(packet.decode())
            else:
                audio_packets += 1
        if not decoded_one:
            raise RecordingError(f"{path.name}: no decodable video frame")
        duration = float(container.duration / av.time_base) if container.duration else last
        fps = float(video.average_rate) if video is not None and video.average_rate else None
        return (
            duration,
            video.codec_context.name if video else None,
            video.codec_context.width if video else None,
            video.codec_context.height if video else None,
            frames,
            fps,
            audio.codec_context.name if audio else None,
            audio_packets,
        )


def _manifest_path(target: Path) -> Path:
    return target.with_name(target.name + ".json")


def _existing(target: Path, sources: dict[str, int]) -> RecordingInfo | None:
    manifest = _manifest_path(target)
    if not (target.exists() and manifest.exists()):
        return None
    try:
        info = msgspec.json.decode(manifest.read_bytes(), type=RecordingInfo)
    except msgspec.DecodeError:
        return None
    if info.sources != sources or info.sha256 != sha256_file(target):
        return None
    return info


def convert_participant(recording: ParticipantRecording, out_dir: Path, *, timeout_s: float = 600.0) -> RecordingInfo:
    """Convert one publisher's recording to ``out_dir/BASE.webm`` (+ ``.webm.json`` manifest)."""
    if recording.video is None and recording.audio is None:
        raise RecordingError(f"{recording.base}: nothing recorded")
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{recording.base}.webm"
    headers = [h for h in (recording.video, recording.audio) if h is not None]
    sources = {Path(h.path).name: h.size_bytes for h in headers}
    existing = _existing(target, sources)
    if existing is not None:
        return existing
    start = min(h.first_packet_us for h in headers)
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".convert-") as tmp:
        inputs: list[tuple[Path, float]] = []
        for header, name in ((recording.video, "video.webm"), (recording.audio, "audio.mka")):
            if header is not None:
                _pp_rec(header.path, Path(tmp) / name, timeout_s)
                inputs.append((Path(tmp) / name, (header.first_packet_us - start) / 1e6))
        partial = Path(tmp) / "out.webm"
        _remux(inputs, partial)
        os.replace(partial, target)
    duration, vcodec, width, height, frames, fps, acodec, apackets = probe(target)
    info = RecordingInfo(
        base=recording.base,
        path=str(target),
        sha256=sha256_file(target),
        size_bytes=target.stat().st_size,
        duration_s=round(duration, 3),
        video_codec=vcodec,
        width=width,
        height=height,
        video_frames=frames,
        fps=fps,
        audio_codec=acodec,
        audio_packets=apackets,
        sources=sources,
    )
    _manifest_path(target).write_bytes(msgspec.json.encode(info))
    return info


def convert_room_recordings(rec_dir: Path, out_dir: Path, *, timeout_s: float = 600.0) -> list[RecordingInfo]:
    """The background job after a session ends: every participant of the room, idempotently.

    Call it after the room is destroyed (Janus has closed the files). The caller stores
    each ``RecordingInfo`` (path, checksum, retention) in the audit log.
    """
    return [convert_participant(r, out_dir, timeout_s=timeout_s) for r in group_recordings(rec_dir)]
