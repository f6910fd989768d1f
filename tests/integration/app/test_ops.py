"""Operations endpoints, request ids, OpenAPI."""

from __future__ import annotations

from typing import Any


async def test_health_and_ready(client: Any) -> None:
    assert (await client.get("/health")).json() == {"status": "ok", "checks": {}}
    ready = await client.get("/ready")
    assert ready.status_code == 200
    checks = ready.json()["checks"]
    assert checks["database"] == "ok"
    assert checks["migrations"] == "ok"
    # No media server runs in this test and none is configured (BRANCHLESS_JANUS_URL empty):
    # reported, but it does not make the instance unready (it does once configured).
    assert checks["media_server"].startswith("unavailable")
    assert set(checks) == {"database", "migrations", "media_server", "face_models"}


async def test_metrics_are_prometheus_text(client: Any) -> None:
    def count(text: str, method: str, path: str, status: int) -> float:
        labels = f'app_name="branchless",method="{method}",path="{path}",status_code="{status}"'
        lines = [line for line in text.splitlines() if line.startswith("branchless_requests_total{" + labels + "}")]
        return float(lines[0].rsplit(" ", 1)[1]) if lines else 0.0

    before = (await client.get("/metrics")).text
    await client.get("/health")
    for _ in range(2):
        assert (await client.get("/api/credit/applications/987654321")).status_code == 401
    r = await client.get("/metrics")
    assert r.status_code == 200
    assert count(r.text, "GET", "/health", 200) == count(before, "GET", "/health", 200) + 1
    # counted per route template and status, never per raw path (ids would explode the series)
    template = "/api/credit/applications/{application_id}"
    assert count(r.text, "GET", template, 401) == count(before, "GET", template, 401) + 2
    assert "987654321" not in r.text
    assert 'branchless_request_duration_seconds_count{app_name="branchless",method="GET",path="/health"' in r.text
    assert count(r.text, "GET", "/metrics", 200) == 0  # the scrape itself is not measured


async def test_every_response_carries_a_request_id(client: Any) -> None:
    r = await client.get("/health")
    assert len(r.headers["x-request-id"]) >= 8
    r = await client.get("/health", headers={"x-request-id": "trace-abc-123456"})
    assert r.headers["x-request-id"] == "trace-abc-123456"
    r = await client.get("/health", headers={"x-request-id": "bad id with spaces"})
    assert r.headers["x-request-id"] != "bad id with spaces"


async def test_error_bodies_carry_the_request_id(client: Any) -> None:
    r = await client.get("/api/auth/me")
    assert r.status_code == 401
    assert r.json()["request_id"] == r.headers["x-request-id"]


async def test_openapi_lists_the_api(client: Any) -> None:
    spec = (await client.get("/schema/openapi.json")).json()
    assert "/api/customers" in spec["paths"]
    ops = {op["operationId"] for path in spec["paths"].values() for op in path.values()}
    assert {"create_customer", "get_customer", "create_token", "verify_audit_chain"} <= ops


async def test_request_logs_are_json_with_request_id_and_no_personal_data(client: Any, capsys: Any, uid: str) -> None:
    import json

    from tests.helpers import PASSWORD, id_number, mobile

    number, phone = id_number(), mobile()
    capsys.readouterr()
    r = await client.post(
        "/api/customers",
        json={
            "email": f"log-{uid}@example.cn",
            "password": PASSWORD,
            "fullName": "赵六",
            "phone": phone,
            "idNumber": number,
        },
    )
    assert r.status_code == 201
    err = capsys.readouterr().err
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    access = [line for line in lines if line.get("event") == "request" and line.get("path") == "/api/customers"]
    assert access
    assert access[0]["request_id"] == r.headers["x-request-id"]
    assert number not in err
    assert phone not in err
    assert PASSWORD not in err


async def test_staff_reading_a_customer_is_audited(client: Any) -> None:
    from app.tables import AuditEntry
    from tests.helpers import bearer, make_customer, make_staff

    customer, manager = await make_customer(), await make_staff("account_manager")
    r = await client.get(f"/api/customers/{customer.customer_id}", headers=await bearer(manager.account_id))
    assert r.status_code == 200
    entry = (
        await AuditEntry.select()
        .where((AuditEntry.action == "customer.viewed") & (AuditEntry.entity_id == str(customer.customer_id)))
        .first()
    )
    assert entry is not None
    assert entry["actor_id"] == manager.account_id
    assert entry["actor_role"] == "account_manager"
