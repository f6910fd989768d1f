"""Sign-up, profiles and personal-data protection, through the real API and database."""

from __future__ import annotations

from typing import Any

from app.tables import Account, AuditEntry, Customer
from tests.helpers import PASSWORD, bearer, id_number, make_customer, mobile


def _signup(uid: str, **over: Any) -> dict[str, Any]:
    body = {
        "email": f"new-{uid}@example.cn",
        "password": PASSWORD,
        "fullName": "李雷",
        "phone": mobile(),
        "idNumber": id_number(),
        "bankAccount": "6222020200112233445",
    }
    body.update(over)
    return body


async def test_signup_stores_personal_numbers_encrypted_and_masks_them(client: Any, uid: str) -> None:
    body = _signup(uid)
    r = await client.post("/api/customers", json=body)
    assert r.status_code == 201, r.text
    out = r.json()
    assert out["idNumber"].endswith(body["idNumber"][-4:])
    assert body["idNumber"] not in r.text
    row = await Customer.select().where(Customer.id == out["id"]).first()
    stored = " ".join(str(v) for v in row.values())
    for secret in (body["idNumber"], body["phone"], body["bankAccount"]):
        assert secret not in stored
    assert row["id_number_enc"].startswith("v1.")


async def test_customer_is_found_by_keyed_hash_of_identity_number(client: Any, uid: str) -> None:
    from app.accounts import find_customer_by_id_number

    body = _signup(uid)
    r = await client.post("/api/customers", json=body)
    found = await find_customer_by_id_number(body["idNumber"].lower())
    assert found is not None
    assert found.id == r.json()["id"]


async def test_duplicate_email_is_409_and_writes_nothing(client: Any, uid: str) -> None:
    first = _signup(uid)
    assert (await client.post("/api/customers", json=first)).status_code == 201
    accounts_before = await Account.count()
    audit_before = await AuditEntry.count()
    r = await client.post("/api/customers", json=_signup(uid, idNumber=id_number()))
    assert r.status_code == 409
    assert r.json()["error"] == "email_taken"
    assert await Account.count() == accounts_before
    assert await AuditEntry.count() == audit_before


async def test_duplicate_identity_number_is_409(client: Any, uid: str) -> None:
    body = _signup(uid)
    assert (await client.post("/api/customers", json=body)).status_code == 201
    r = await client.post("/api/customers", json=_signup(uid + "b", idNumber=body["idNumber"]))
    assert r.status_code == 409
    assert r.json()["error"] == "id_number_taken"


async def test_bad_fields_are_422_with_a_field_path(client: Any, uid: str) -> None:
    cases = [
        ({"password": "short"}, "$.password"),
        ({"phone": "12345678901"}, "$.phone"),
        ({"idNumber": "110105198807160420"}, "$.idNumber"),
        ({"bankAccount": "12ab"}, "$.bankAccount"),
        ({"email": "not-an-email"}, "$.email"),
        ({"favouriteColour": "red"}, "$"),
    ]
    for change, path in cases:
        r = await client.post("/api/customers", json=_signup(uid, **change))
        assert r.status_code in (400, 422), (change, r.text)
        body = r.json()
        assert body["error"] == "validation", body
        assert body["fields"][0]["path"].startswith(path), (change, body)
        assert body["message"]


async def test_malformed_json_is_a_clear_4xx(client: Any) -> None:
    r = await client.post("/api/customers", content=b"{not json", headers={"content-type": "application/json"})
    assert 400 <= r.status_code < 500
    assert r.json()["error"] in ("validation", "bad_request")


async def test_oversized_body_is_refused(client: Any) -> None:
    r = await client.post(
        "/api/customers", content=b"x" * (11 * 1024 * 1024), headers={"content-type": "application/json"}
    )
    assert r.status_code == 413
    assert r.json()["error"] == "too_large"


async def test_customer_updates_own_phone_and_the_change_is_audited(client: Any) -> None:
    me = await make_customer()
    new_phone = mobile()
    r = await client.patch(
        f"/api/customers/{me.customer_id}", json={"phone": new_phone}, headers=await bearer(me.account_id)
    )
    assert r.status_code == 200, r.text
    assert r.json()["phone"].endswith(new_phone[-4:])
    entry = (
        await AuditEntry.select()
        .where((AuditEntry.action == "customer.updated") & (AuditEntry.entity_id == str(me.customer_id)))
        .first()
    )
    assert entry is not None
    assert entry["actor_id"] == me.account_id
    assert entry["before_digest"] != entry["after_digest"]
    assert new_phone not in str(entry)


async def test_customer_cannot_update_another_customer(client: Any) -> None:
    me, other = await make_customer(), await make_customer()
    r = await client.patch(
        f"/api/customers/{other.customer_id}", json={"phone": mobile()}, headers=await bearer(me.account_id)
    )
    assert r.status_code == 404
