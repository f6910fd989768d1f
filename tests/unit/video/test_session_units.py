"""Pure parts of the video session backend: names, participants, request bodies, Janus link, messages."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import msgspec
import pytest

from app.settings import load_settings
from video.controllers.sessions import MAX_MESSAGE_BYTES, _parse, _same_origin
from video.hub import JanusLink, to_json
from video.recordings import participant_of
from video.schemas import Checklist, DecisionIn, SessionCreate
from video.service import _camel, _masked_name, _summary


@pytest.mark.parametrize(
    ("base", "expected"),
    [
        ("customer-2", "customer"),
        ("customer-1", "customer"),
        ("manager-12", "manager"),
        ("customer", "customer"),
        ("manager-x", "manager-x"),
        ("", ""),
    ],
)
def test_participant_of_drops_the_publication_number(base: str, expected: str) -> None:
    assert participant_of(base) == expected


@pytest.mark.parametrize(
    ("name", "masked"),
    [("张伟", "张*"), ("欧阳娜娜", "欧***"), ("Li", "L*"), ("王", "王*"), ("", "—"), (None, "—")],
)
def test_names_are_masked_beyond_the_first_character(name: str | None, masked: str) -> None:
    assert _masked_name(name) == masked


def test_checklist_items_are_named_as_the_api_spells_them() -> None:
    assert _camel("willingness_confirmed") == "willingnessConfirmed"
    assert _camel("terms_understood") == "termsUnderstood"
    assert set(json.loads(msgspec.json.encode(Checklist()))) == {
        "identityConfirmed",
        "purposeConfirmed",
        "willingnessConfirmed",
        "termsUnderstood",
    }


def test_queue_summary_names_purpose_and_case_state() -> None:
    assert _summary({"purpose": "claim", "case_state": "face_matched"}) == "Insurance claim 理赔; KYC: face matched"
    assert _summary({"purpose": "other", "case_state": "live"}) == "other; KYC: live"


def _session_create(body: dict[str, Any]) -> SessionCreate:
    return msgspec.json.decode(json.dumps(body), type=SessionCreate)


def test_session_create_needs_recording_consent() -> None:
    ok = _session_create({"purpose": "identity", "recordingConsent": True, "appointmentId": 7})
    assert (ok.purpose, ok.recording_consent, ok.appointment_id) == ("identity", True, 7)
    assert _session_create({"purpose": "loan", "recordingConsent": True}).appointment_id is None
    for body in ({"purpose": "loan", "recordingConsent": False}, {"purpose": "loan"}):
        with pytest.raises(msgspec.ValidationError, match=r"^recordingConsent: "):
            _session_create(body)
    with pytest.raises(msgspec.ValidationError, match=r"\$\.purpose"):
        _session_create({"purpose": "mortgage", "recordingConsent": True})


@pytest.mark.parametrize(
    "body",
    [
        {"decision": "approve", "reason": ""},
        {"decision": "maybe", "reason": "why not"},
        {"decision": "reject", "reason": "x" * 501},
        {"decision": "reject"},
    ],
)
def test_decision_bodies_are_checked(body: dict[str, Any]) -> None:
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(json.dumps(body), type=DecisionIn)


def test_janus_link_uses_explicit_secrets_and_never_the_development_ones(tmp_path: Any) -> None:
    settings = load_settings(
        {
            "BRANCHLESS_VAR_DIR": str(tmp_path),
            "BRANCHLESS_JANUS_URL": "http://127.0.0.1:18088/janus",
            "BRANCHLESS_JANUS_API_SECRET": "an-api-secret-of-32-characters!!",
            "BRANCHLESS_JANUS_ROOM_ADMIN_KEY": "a-room-admin-key-0123456789",
            "BRANCHLESS_VIDEO_ALLOWED_NETWORKS": "10.0.0.0/8, 192.0.2.0/24,",
            "BRANCHLESS_VIDEO_ICE_SERVERS": "stun:stun.example.cn:3478, turn:turn.example.cn:3478",
        }
    )
    link = JanusLink.from_settings(settings)
    assert link.url == "http://127.0.0.1:18088/janus"
    assert (link.api_secret, link.room_admin_key) == ("an-api-secret-of-32-characters!!", "a-room-admin-key-0123456789")
    assert link.recordings_root == str(tmp_path / "janus" / "recordings")
    assert link.allowed_networks == ("10.0.0.0/8", "192.0.2.0/24")
    assert link.ice_servers == ("stun:stun.example.cn:3478", "turn:turn.example.cn:3478")
    assert not (tmp_path / "janus" / "secrets.json").exists()  # the development secrets were not read or made


def test_janus_link_defaults_to_the_development_janus(tmp_path: Any) -> None:
    settings = load_settings(
        {
            "BRANCHLESS_VAR_DIR": str(tmp_path),
            "BRANCHLESS_JANUS_API_SECRET": "an-api-secret-of-32-characters!!",
            "BRANCHLESS_JANUS_ROOM_ADMIN_KEY": "a-room-admin-key-0123456789",
            "BRANCHLESS_JANUS_RECORDINGS_ROOT": "/srv/janus/recordings",
        }
    )
    link = JanusLink.from_settings(settings)
    assert link.url == "http://127.0.0.1:8088/janus"
    assert link.recordings_root == "/srv/janus/recordings"
    assert (link.allowed_networks, link.ice_servers) == (("0.0.0.0/0",), ())


def test_signalling_messages_are_json_objects_of_bounded_size() -> None:
    assert _parse('{"type": "leave"}') == {"type": "leave"}
    assert _parse("not json") is None
    assert _parse("[1, 2]") is None
    assert _parse('"text"') is None
    assert _parse(json.dumps({"type": "publish", "sdp": "v=0" + "a" * MAX_MESSAGE_BYTES})) is None


def test_same_origin_compares_the_origin_with_the_host() -> None:
    def socket(**headers: str) -> Any:
        return SimpleNamespace(headers=headers)

    assert _same_origin(socket(host="bank.example.cn", origin="https://bank.example.cn"))
    assert _same_origin(socket(host="bank.example.cn"))  # not a browser
    assert not _same_origin(socket(host="bank.example.cn", origin="https://evil.example"))
    assert not _same_origin(socket(host="bank.example.cn", origin="https://bank.example.cn.evil.example"))


def test_messages_are_plain_json_with_camel_case_structs() -> None:
    at = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
    out = to_json({"type": "state", "at": at, "checklist": Checklist(identity_confirmed=True)})
    assert out == {
        "type": "state",
        "at": "2026-11-27T10:00:00Z",
        "checklist": {
            "identityConfirmed": True,
            "purposeConfirmed": False,
            "willingnessConfirmed": False,
            "termsUnderstood": False,
        },
    }
