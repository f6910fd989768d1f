"""The signing ceremony end to end: tax-data consent generated, signed by the customer
with a fresh face check, countersigned by a manager, verified by us and by pdfsig."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from credit.consent import active_consent
from tests.helpers import bearer, id_number, make_customer, make_staff, make_taxpayer
from tests.integration.kyc.conftest import image_bytes, video_jpegs


async def _verified_customer(client: Any) -> tuple[Any, dict[str, str]]:
    """A customer whose identity a manager verified (the flagged-then-reviewed path)."""
    me = await make_customer("周密")
    headers = await bearer(me.account_id)
    assert (await client.post("/api/kyc/consent", json={"agree": True}, headers=headers)).status_code == 201
    case_id = (await client.post("/api/kyc/cases", headers=headers)).json()["id"]
    r = await client.put(
        f"/api/kyc/cases/{case_id}/document",
        data={"kind": "prc_resident_id", "number": id_number(), "full_name": "周密"},
        files={"portrait": ("p.jpg", image_bytes("lp_d13_person_portrait.jpg"), "image/jpeg")},
        headers=headers,
    )
    assert r.json()["state"] == "flagged"  # the number differs from sign-up: a person checks
    manager = await make_staff("account_manager")
    r = await client.post(
        f"/api/kyc/cases/{case_id}/review",
        json={"decision": "approve", "reason": "number checked against the card"},
        headers=await bearer(manager.account_id),
    )
    assert r.json()["state"] == "verified"
    return me, headers


def _frames(name: str, count: int = 6) -> list[tuple[str, tuple[str, bytes, str]]]:
    frames = video_jpegs(name, fps=3.0, seconds=3.0)[:count]
    return [("frames", (f"f{i}.jpg", data, "image/jpeg")) for i, (data, _) in enumerate(frames)]


@pytest.fixture(scope="module")
def live_frames() -> list[tuple[str, tuple[str, bytes, str]]]:
    return _frames("lp_d13_person_real_640x480_6s.mp4")


async def test_consent_is_signed_countersigned_and_verifies_everywhere(
    client: Any, live_frames: list[Any], tmp_path: Path
) -> None:
    me, headers = await _verified_customer(client)
    assert me.customer_id is not None
    taxpayer = await make_taxpayer(me.customer_id)
    r = await client.post("/api/credit/tax-consents", json={"taxpayerPk": taxpayer, "months": 12}, headers=headers)
    assert r.status_code == 201, r.text
    doc_id = r.json()["signedDocumentId"]
    doc = (await client.get(f"/api/signatures/{doc_id}", headers=headers)).json()
    assert doc["state"] == "awaiting_customer"
    pdf = await client.get(f"/api/signatures/{doc_id}/pdf", headers=headers)
    assert pdf.headers["content-type"].startswith("application/pdf")
    assert pdf.headers["x-document-sha256"] == doc["sha256"]

    def sign(sha: str, frames: list[Any], intent: str = "yes") -> Any:
        return client.post(
            f"/api/signatures/{doc_id}/sign",
            data={"shown_sha256": sha, "intent": intent},
            files=frames,
            headers=headers,
        )

    assert (await sign("0" * 64, live_frames)).json()["error"] == "document_changed"
    assert (await sign(doc["sha256"], live_frames, intent="no")).status_code == 422
    stranger = await sign(doc["sha256"], _frames("crowd_real_640x480_4s.mp4"))
    assert stranger.status_code == 403
    assert stranger.json()["error"] == "face_check_failed"
    signed = await sign(doc["sha256"], live_frames)
    assert signed.status_code == 200, signed.text
    assert signed.json()["state"] == "awaiting_staff"
    assert (
        await active_consent((await client.get(f"/api/taxpayers/{taxpayer}", headers=headers)).json()["taxpayerId"])
        is None
    )  # not in force before the countersignature

    adjuster = await make_staff("claims_adjuster")
    r = await client.post(
        f"/api/signatures/{doc_id}/countersign",
        json={"shownSha256": signed.json()["sha256"]},
        headers=await bearer(adjuster.account_id),
    )
    assert r.status_code == 403
    assert r.json()["error"] == "not_your_signature"
    manager = await make_staff("account_manager")
    r = await client.post(
        f"/api/signatures/{doc_id}/countersign",
        json={"shownSha256": signed.json()["sha256"]},
        headers=await bearer(manager.account_id),
    )
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "completed"
    assert [s["role"] for s in r.json()["signers"]] == ["customer", "account_manager"]

    report = (await client.get(f"/api/signatures/{doc_id}/verification", headers=headers)).json()
    assert report["valid"] is True
    assert report["intact"] is True
    assert len(report["signers"]) == 2
    final = (await client.get(f"/api/signatures/{doc_id}/pdf", headers=headers)).content
    path = tmp_path / "signed.pdf"
    path.write_bytes(final)
    out = subprocess.run(["pdfsig", str(path)], capture_output=True, text=True, check=False).stdout
    assert out.count("Signature is Valid") == 2, out

    taxpayer_id = (await client.get(f"/api/taxpayers/{taxpayer}", headers=headers)).json()["taxpayerId"]
    consent = await active_consent(taxpayer_id)
    assert consent is not None

    tampered = bytearray(final)
    tampered[len(tampered) // 3] ^= 0x01
    r = await client.post(
        "/api/signatures/verify",
        files={"file": ("x.pdf", bytes(tampered), "application/pdf")},
        headers=await bearer(manager.account_id),
    )
    assert r.status_code in (200, 422)
    if r.status_code == 200:
        assert r.json()["valid"] is False


async def test_unverified_customer_cannot_sign(client: Any, live_frames: list[Any]) -> None:
    me = await make_customer()
    assert me.customer_id is not None
    headers = await bearer(me.account_id)
    taxpayer = await make_taxpayer(me.customer_id)
    doc_id = (await client.post("/api/credit/tax-consents", json={"taxpayerPk": taxpayer}, headers=headers)).json()[
        "signedDocumentId"
    ]
    sha = (await client.get(f"/api/signatures/{doc_id}", headers=headers)).json()["sha256"]
    r = await client.post(
        f"/api/signatures/{doc_id}/sign",
        data={"shown_sha256": sha, "intent": "yes"},
        files=live_frames,
        headers=headers,
    )
    assert r.status_code == 403
    assert r.json()["error"] == "identity_not_verified"


async def test_consent_only_for_the_customers_own_taxpayer(client: Any) -> None:
    me, other = await make_customer(), await make_customer()
    assert other.customer_id is not None
    theirs = await make_taxpayer(other.customer_id)
    r = await client.post("/api/credit/tax-consents", json={"taxpayerPk": theirs}, headers=await bearer(me.account_id))
    assert r.status_code == 404


async def test_not_a_pdf_is_refused_by_verify(client: Any) -> None:
    manager = await make_staff("account_manager")
    r = await client.post(
        "/api/signatures/verify",
        files={"file": ("x.pdf", b"%PDF-1.7 garbage", "application/pdf")},
        headers=await bearer(manager.account_id),
    )
    assert r.status_code == 422
    assert r.json()["error"]
