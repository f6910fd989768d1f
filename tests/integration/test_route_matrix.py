"""Every route, every role, and another customer's ids: the answer each must get.

A route added without an entry here fails ``test_matrix_covers_every_route``, so
nobody ships an endpoint whose access rules were never stated.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.helpers import PASSWORD, bearer, id_number, make_customer, make_policy, make_staff, make_taxpayer, mobile
from tests.integration.credit.builders import matrix_ids
from tests.integration.video_appointments.builders import matrix_ids as appointment_matrix_ids

ROLES = ("anon", "own", "other", "account_manager", "risk_officer", "claims_adjuster", "admin")
STAFF = ("account_manager", "risk_officer", "claims_adjuster", "admin")


def _signup() -> dict[str, Any]:
    return {
        "email": f"m-{secrets.token_hex(5)}@example.cn",
        "password": PASSWORD,
        "fullName": "矩阵",
        "phone": mobile(),
        "idNumber": id_number(),
    }


def _blank_png() -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (180, 180, 180)).save(buf, format="PNG")
    return buf.getvalue()


def _staff() -> dict[str, Any]:
    return {
        "email": f"s-{secrets.token_hex(5)}@branchless.cn",
        "password": PASSWORD,
        "displayName": "New",
        "role": "account_manager",
    }


@dataclass(frozen=True)
class Case:
    expect: dict[str, int]
    json: Callable[[], dict[str, Any]] | None = None
    form: Callable[[], dict[str, str]] | None = None
    files: Callable[[], list[tuple[str, tuple[str, bytes, str]]]] | None = None
    note: str = ""

    def status(self, who: str) -> int:
        return self.expect[who]


def only(roles: dict[str, int], default: int, anon: int = 401) -> dict[str, int]:
    out = dict.fromkeys(ROLES, default)
    out["anon"] = anon
    out.update(roles)
    return out


PUBLIC = dict.fromkeys(ROLES, 200)
_CURRENT: dict[str, int] = {}
"""The ids of the objects the running request targets (set before each request)."""
_DOC_READERS = only({"own": 200, "other": 404, "account_manager": 200, "claims_adjuster": 200, "admin": 200}, 403)

MATRIX: dict[tuple[str, str], Case] = {
    ("GET", "/health"): Case(PUBLIC),
    ("GET", "/ready"): Case(PUBLIC),
    ("GET", "/metrics"): Case(PUBLIC, note="scraped from the private network; holds no personal data"),
    ("GET", "/schema"): Case(PUBLIC),
    ("GET", "/schema/swagger"): Case(PUBLIC),
    ("GET", "/schema/openapi.json"): Case(PUBLIC),
    ("GET", "/schema/oauth2-redirect.html"): Case(PUBLIC),
    ("GET", "/schema/{path:str}"): Case(dict.fromkeys(ROLES, 404)),
    ("GET", "/static/{file_path:path}"): Case(PUBLIC),
    ("GET", "/login"): Case(PUBLIC),
    ("POST", "/login"): Case(dict.fromkeys(ROLES, 401), form=lambda: {"email": "x@example.cn", "password": "wrong"}),
    ("POST", "/logout"): Case(only({}, 303), form=dict),
    ("GET", "/"): Case(only({}, 200, anon=302)),
    ("POST", "/api/auth/tokens"): Case(
        dict.fromkeys(ROLES, 401), json=lambda: {"email": "x@example.cn", "password": "wrong"}
    ),
    ("GET", "/api/auth/me"): Case(only({}, 200)),
    ("DELETE", "/api/auth/tokens/current"): Case(only({}, 204)),
    ("POST", "/api/customers"): Case(dict.fromkeys(ROLES, 201), json=_signup, note="sign-up is open"),
    ("GET", "/api/customers"): Case(only({"account_manager": 200, "claims_adjuster": 200, "admin": 200}, 403)),
    ("GET", "/api/customers/{customer_id:int}"): Case(
        only({"own": 200, "other": 404, "account_manager": 200, "claims_adjuster": 200, "admin": 200}, 403)
    ),
    ("PATCH", "/api/customers/{customer_id:int}"): Case(
        only({"own": 200, "other": 404}, 403), json=lambda: {"phone": mobile()}
    ),
    ("POST", "/api/staff"): Case(only({"admin": 201}, 403), json=_staff),
    ("GET", "/api/audit/entries"): Case(only({"admin": 200}, 403)),
    ("GET", "/api/audit/verify"): Case(only({"admin": 200}, 403)),
    ("GET", "/api/policies"): Case(only({"own": 200, "other": 200, "claims_adjuster": 200, "admin": 200}, 403)),
    ("GET", "/api/policies/{policy_id:int}"): Case(
        only({"own": 200, "other": 404, "claims_adjuster": 200, "admin": 200}, 403)
    ),
    ("GET", "/api/taxpayers/{taxpayer_pk:int}"): Case(
        only({"own": 200, "other": 404, "risk_officer": 200, "account_manager": 200, "admin": 200}, 403)
    ),
    ("POST", "/api/kyc/consent"): Case(only({"own": 201, "other": 201}, 403), json=lambda: {"agree": True}),
    ("POST", "/api/kyc/cases"): Case(only({"own": 201, "other": 201}, 403)),
    ("GET", "/api/kyc/cases/{case_id:int}"): Case(
        only({"own": 200, "other": 404, "account_manager": 200, "admin": 200}, 403)
    ),
    ("PUT", "/api/kyc/cases/{case_id:int}/document"): Case(
        only({"own": 422, "other": 404}, 403),
        form=lambda: {"kind": "prc_resident_id", "number": id_number(), "full_name": "矩阵"},
        files=lambda: [("portrait", ("p.png", _blank_png(), "image/png"))],
        note="own: a blank image has no face (422): guard and ownership let the request through",
    ),
    ("POST", "/api/kyc/cases/{case_id:int}/frames"): Case(
        only({"own": 409, "other": 404}, 403),
        files=lambda: [("frames", ("f.png", _blank_png(), "image/png"))],
        note="own: no document yet (409)",
    ),
    ("POST", "/api/kyc/cases/{case_id:int}/review"): Case(
        only({"account_manager": 409}, 403),
        json=lambda: {"decision": "approve", "reason": "looks right"},
        note="the manager reaches the case; a pending case cannot be approved (409)",
    ),
    ("GET", "/api/kyc/verdict"): Case(only({"own": 200, "other": 200}, 403)),
    ("POST", "/api/credit/tax-consents"): Case(
        only({"own": 201, "other": 404}, 403),
        json=lambda: {"taxpayerPk": _CURRENT["taxpayer_pk"]},
        note="other: the first customer asking for the second's taxpayer",
    ),
    ("GET", "/api/signatures/{doc_id:int}"): Case(_DOC_READERS),
    ("GET", "/api/signatures/{doc_id:int}/pdf"): Case(_DOC_READERS),
    ("GET", "/api/signatures/{doc_id:int}/verification"): Case(_DOC_READERS, note="unsigned yet: 200, valid false"),
    ("POST", "/api/signatures/{doc_id:int}/sign"): Case(
        only({"own": 409, "other": 404}, 403),
        form=lambda: {"shown_sha256": "0" * 64, "intent": "yes"},
        files=lambda: [("frames", (f"f{i}.png", _blank_png(), "image/png")) for i in range(3)],
        note="own: the bytes shown differ (409) - reached the ceremony",
    ),
    ("POST", "/api/signatures/{doc_id:int}/countersign"): Case(
        only({"account_manager": 409}, 403),
        json=lambda: {"shownSha256": "0" * 64},
        note="the manager reaches it but the customer has not signed (409); an adjuster is the wrong signer (403)",
    ),
    ("GET", "/identity"): Case(only({"own": 200, "other": 200}, 403, anon=302)),
    ("GET", "/documents/{doc_id:int}"): Case(
        only({"own": 200, "other": 404, "account_manager": 200, "claims_adjuster": 200, "admin": 200}, 403, anon=302)
    ),
    ("POST", "/api/signatures/verify"): Case(
        only({"account_manager": 422, "claims_adjuster": 422, "risk_officer": 422, "admin": 422}, 403),
        files=lambda: [("file", ("x.pdf", b"not a pdf", "application/pdf"))],
    ),
    ("DELETE", "/api/kyc/consent"): Case(only({"own": 200, "other": 200}, 403)),
    ("POST", "/api/credit/applications"): Case(
        only({"own": 201, "other": 404}, 403),
        json=lambda: {
            "taxpayerPk": _CURRENT["taxpayer_pk"],
            "amount": "200000.00",
            "termMonths": 12,
            "purpose": "working_capital",
        },
        note="own: decided in the request under the signed consent; other: the second customer's taxpayer",
    ),
    ("GET", "/api/credit/applications/{application_id:int}"): Case(
        only({"own": 200, "other": 404, "account_manager": 200, "risk_officer": 200, "admin": 200}, 403)
    ),
    ("POST", "/api/credit/decisions/{decision_id:int}/replay"): Case(only({"risk_officer": 200}, 403)),
    ("GET", "/api/credit/rulesets"): Case(only({"risk_officer": 200}, 403)),
    ("POST", "/api/credit/rulesets"): Case(
        only({"risk_officer": 201}, 403),
        json=lambda: {
            "product": f"m_{secrets.token_hex(4)}",
            "version": "1",
            "hitPolicy": "first",
            "maxLimitFen": 100_000_000,
            "rows": [],
            "defaults": {"outcome": "refer", "limit": "tax_paid_12m_fen", "reasons": ["MANUAL"]},
        },
    ),
    ("GET", "/api/credit/rulesets/{ruleset_id:int}"): Case(only({"risk_officer": 200}, 403)),
    ("PUT", "/api/credit/rulesets/{ruleset_id:int}"): Case(
        only({"risk_officer": 422}, 403),
        json=dict,
        note="the officer authored the draft: an empty table is refused at its cells (422)",
    ),
    ("POST", "/api/credit/rulesets/{ruleset_id:int}/copy"): Case(only({"risk_officer": 201}, 403)),
    ("POST", "/api/credit/rulesets/{ruleset_id:int}/submit"): Case(only({"risk_officer": 200}, 403)),
    ("POST", "/api/credit/rulesets/{ruleset_id:int}/approve"): Case(
        only({"risk_officer": 403}, 403), note="risk officer: four eyes, the author may not approve (403 four_eyes)"
    ),
    ("POST", "/api/credit/rulesets/{ruleset_id:int}/reject"): Case(
        only({"risk_officer": 200}, 403), json=lambda: {"note": "back to the author"}
    ),
    ("POST", "/api/credit/rulesets/{ruleset_id:int}/publish"): Case(
        only({"risk_officer": 409}, 403), note="a draft again after the return: not publishable (409)"
    ),
    ("POST", "/api/credit/rulesets/{ruleset_id:int}/backtest"): Case(only({"risk_officer": 200}, 403)),
    ("GET", "/api/credit/challenger"): Case(
        only({"risk_officer": 404}, 403), note="no champion/challenger experiment for tax_loan (404)"
    ),
    ("POST", "/api/credit/challenger"): Case(
        only({"risk_officer": 409}, 403),
        json=lambda: {"challengerId": _CURRENT["ruleset_id"], "share": 0.1, "mode": "shadow"},
        note="a draft of another product cannot challenge tax_loan (409)",
    ),
    ("DELETE", "/api/credit/challenger"): Case(only({"risk_officer": 404}, 403), note="nothing running (404)"),
    ("GET", "/api/credit/challenger/report"): Case(only({"risk_officer": 404}, 403), note="no experiment (404)"),
    ("GET", "/api/credit/monitoring/psi"): Case(only({"risk_officer": 200}, 403)),
    ("GET", "/api/credit/relief"): Case(only({"account_manager": 200, "risk_officer": 200, "admin": 200}, 403)),
    ("GET", "/risk/rulesets"): Case(only({"risk_officer": 200}, 403, anon=302)),
    ("GET", "/risk/rulesets/{ruleset_id:int}"): Case(only({"risk_officer": 200}, 403, anon=302)),
    ("DELETE", "/api/credit/rulesets/{ruleset_id:int}"): Case(
        only({"risk_officer": 409}, 403),
        note="the author reaches it; submitted once (above), the draft stays on record (409)",
    ),
}

_MANAGERS = only({"account_manager": 200, "admin": 200}, 403)
_NOT_ACTIVE = only({"account_manager": 409}, 403)
MATRIX.update(
    {
        ("GET", "/video"): Case(only({"own": 200, "other": 200}, 403, anon=302)),
        ("GET", "/console"): Case(only({"account_manager": 200}, 403, anon=302)),
        ("GET", "/console/sessions/{session_id:int}"): Case(
            only({"account_manager": 200, "admin": 200}, 403, anon=302), note="customers are refused by role"
        ),
        ("POST", "/api/video/sessions"): Case(
            only({"own": 409, "other": 409}, 403),
            json=lambda: {"purpose": "loan", "recordingConsent": True},
            note="the customer reaches it: already waiting in the queue (409 session_exists)",
        ),
        ("GET", "/api/video/sessions/{session_id:int}"): Case(
            only({"own": 200, "other": 404, "account_manager": 200, "admin": 200}, 403)
        ),
        ("GET", "/api/video/queue"): Case(_MANAGERS),
        ("POST", "/api/video/sessions/{session_id:int}/accept"): Case(
            only({"account_manager": 503}, 403),
            note="a manager reaches it; no media server runs in this test (503), the session stays waiting",
        ),
        ("POST", "/api/video/sessions/{session_id:int}/liveness"): Case(_NOT_ACTIVE, note="waiting, not active"),
        ("PUT", "/api/video/sessions/{session_id:int}/checklist"): Case(_NOT_ACTIVE, json=dict),
        ("POST", "/api/video/sessions/{session_id:int}/stills"): Case(_NOT_ACTIVE),
        ("GET", "/api/video/sessions/{session_id:int}/stills"): Case(_MANAGERS),
        ("GET", "/api/video/sessions/{session_id:int}/stills/{evidence_id:int}"): Case(_MANAGERS),
        ("POST", "/api/video/sessions/{session_id:int}/decision"): Case(
            _NOT_ACTIVE, json=lambda: {"decision": "reject", "reason": "matrix"}
        ),
        ("GET", "/api/video/sessions/{session_id:int}/recordings"): Case(_MANAGERS),
        ("GET", "/api/video/recordings/{recording_id:int}"): Case(_MANAGERS),
        ("POST", "/api/video/sessions/{session_id:int}/end"): Case(
            only({"own": 200, "other": 404, "account_manager": 404, "admin": 404}, 403),
            note="only its customer or its own manager may end it; the customer cancels the waiting session",
        ),
    }
)

MATRIX.update(
    {
        # video appointments (预约办): the world's slot_id is a slot of the matrix's manager,
        # booked by that customer. Keep this order: the booking entries rely on it.
        ("POST", "/api/video/slots"): Case(
            only({"account_manager": 201}, 403),
            json=lambda: {"date": _days_ahead(60), "start": "09:00", "end": "10:00", "minutes": 20},
            note="idempotent: publishing the same times again keeps the slots already there",
        ),
        ("GET", "/api/video/slots"): Case(only({"own": 200, "other": 200}, 403)),
        ("POST", "/api/video/slots/{slot_id:int}/booking"): Case(
            only({"own": 409, "other": 409}, 403),
            json=lambda: {"purpose": "loan"},
            note="own: already holds this booking; other: the second customer's slot (409 either way)",
        ),
        ("DELETE", "/api/video/slots/{slot_id:int}/booking"): Case(
            only({"own": 200, "other": 404}, 403), note="own: the booking is given back and the slot opens again"
        ),
        ("DELETE", "/api/video/slots/{slot_id:int}"): Case(
            only({"account_manager": 200, "admin": 200}, 403),
            note="the matrix's manager owns the slot; the admin's second cancel is idempotent (200)",
        ),
        ("GET", "/api/video/appointments"): Case(only({"own": 200, "other": 200}, 403)),
        ("GET", "/api/video/day"): Case(only({"account_manager": 200}, 403)),
        ("GET", "/appointments"): Case(only({"own": 200, "other": 200}, 403, anon=302)),
        ("GET", "/console/day"): Case(only({"account_manager": 200}, 403, anon=302)),
    }
)
# Consent is withdrawn last: it erases the customer's biometrics (evidence stills included).
MATRIX[("DELETE", "/api/kyc/consent")] = MATRIX.pop(("DELETE", "/api/kyc/consent"))


def _days_ahead(days: int) -> str:
    """A local (Asia/Shanghai) day ``days`` ahead, as YYYY-MM-DD."""
    from datetime import timedelta

    from video.appointments import local_today

    return (local_today() + timedelta(days=days)).isoformat()


@dataclass
class World:
    accounts: dict[str, int] = field(default_factory=dict)
    ids: dict[str, dict[str, int]] = field(default_factory=dict)


def app_routes(app: Any) -> set[tuple[str, str]]:
    found = set()
    for route in app.routes:
        for handler in getattr(route, "route_handlers", []):
            for method in getattr(handler, "http_methods", ()):
                if method not in ("OPTIONS", "HEAD"):
                    found.add((method, route.path))
    return found


def test_matrix_covers_every_route(app: Any) -> None:
    routes = app_routes(app)
    missing = routes - MATRIX.keys()
    stale = MATRIX.keys() - routes
    assert not missing, f"routes without an access-matrix entry: {sorted(missing)}"
    assert not stale, f"matrix entries for routes that no longer exist: {sorted(stale)}"


@pytest.fixture
async def world() -> World:
    a, b = await make_customer("甲"), await make_customer("乙")
    w = World()
    w.accounts["own"] = w.accounts["other"] = a.account_id
    for role in STAFF:
        w.accounts[role] = (await make_staff(role)).account_id
    for who, person in (("own", a), ("other", b)):
        assert person.customer_id is not None
        w.ids[who] = {
            "customer_id": person.customer_id,
            "policy_id": await make_policy(person.customer_id),
            "taxpayer_pk": await make_taxpayer(person.customer_id),
            "case_id": await _open_case(person.customer_id),
        }
        w.ids[who]["doc_id"] = await _consent_document(person, w.ids[who]["taxpayer_pk"])
        w.ids[who].update(await _video_ids(person.customer_id, w.ids[who]["case_id"]))
        w.ids[who].update(await matrix_ids(person, w.ids[who]["taxpayer_pk"], w.accounts["risk_officer"]))
        w.ids[who].update(await appointment_matrix_ids(person, w.accounts["account_manager"]))
    return w


async def _open_case(customer_id: int) -> int:
    from app.db import transaction
    from kyc import service

    async with transaction():
        await service.grant_consent(customer_id, "face-2026-01", "127.0.0.1")
        case = await service.start_case(customer_id)
    return int(case.id)


async def _video_ids(customer_id: int, case_id: int) -> dict[str, int]:
    """A waiting video session, a still of its case and a stored recording."""
    from datetime import UTC, datetime, timedelta

    from app.storage import blob_store
    from kyc.tables import KycEvidence
    from video.tables import SessionRecording, VideoSession

    now = datetime.now(UTC)
    session = VideoSession(
        case=case_id,
        customer=customer_id,
        purpose="loan",
        state="waiting",
        recording_consent_at=now,
        queued_at=now,
        updated_at=now,
    )
    await session.save()
    still = blob_store().put("still", b"\xff\xd8\xff matrix still")
    evidence = KycEvidence(case=case_id, kind="still", blob_id=still.blob_id, sha256=still.sha256, captured_at=now)
    await evidence.save()
    video = blob_store().put("recording", b"matrix webm")
    recording = SessionRecording(
        session=session.id,
        participant="customer",
        blob_id=video.blob_id,
        sha256=video.sha256,
        size_bytes=11,
        duration_s=1.0,
        created_at=now,
        erase_after=now + timedelta(days=1),
    )
    await recording.save()
    return {"session_id": session.id, "evidence_id": evidence.id, "recording_id": recording.id}


async def _consent_document(person: Any, taxpayer_pk: int) -> int:
    from app.db import transaction
    from app.security import Principal, Role, TokenKind
    from credit.consent import request_consent

    me = Principal(person.account_id, Role.customer, person.email, "矩阵", person.customer_id, 0, TokenKind.api)
    async with transaction():
        _, doc_id = await request_consent(me, taxpayer_pk, 12)
    return doc_id


def fill(path: str, ids: dict[str, int]) -> str:
    out = path.replace("{file_path:path}", "site.css").replace("{path:str}", "no-such-page")
    for name, value in ids.items():
        out = out.replace(f"{{{name}:int}}", str(value))
    return out


async def test_every_route_answers_every_role_as_stated(client: Any, world: World) -> None:
    await client.get("/login")  # a browser's CSRF cookie, so forms reach their guards
    csrf = client.cookies.get("branchless_csrf")
    failures = []
    # in the matrix's own order: consent is withdrawn last, after the routes that need it
    for (method, path), case in MATRIX.items():
        for who in ROLES:
            headers = {"x-csrftoken": csrf}
            if who != "anon":
                headers.update(await bearer(world.accounts[who]))
            # staff and the customer reach their "own" objects; "other" uses the second customer's
            ids = world.ids["other" if who == "other" else "own"]
            _CURRENT.clear()
            _CURRENT.update(ids)
            url = fill(path, ids)
            kwargs: dict[str, Any] = {"headers": headers}
            if case.json is not None:
                kwargs["json"] = case.json()
            if case.form is not None:
                kwargs["data"] = case.form()
            if case.files is not None:
                kwargs["files"] = case.files()
            r = await client.request(method, url, **kwargs)
            if r.status_code != case.status(who):
                failures.append(f"{method} {url} as {who}: {r.status_code}, expected {case.status(who)}")
    assert not failures, "\n".join(failures)


async def test_lists_hold_only_the_callers_own_records(client: Any, world: World) -> None:
    r = await client.get("/api/policies", headers=await bearer(world.accounts["own"]))
    ids = {p["id"] for p in r.json()}
    assert world.ids["own"]["policy_id"] in ids
    assert world.ids["other"]["policy_id"] not in ids
    assert all(p["customerId"] == world.ids["own"]["customer_id"] for p in r.json())
