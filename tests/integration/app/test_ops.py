"""Operations endpoints, request ids, OpenAPI."""

from __future__ import annotations

from typing import Any


async def test_health_and_ready(client: Any) -> None:
    assert (await client.get("/health")).json() == {"status": "ok", "checks": {}}
    ready = await client.get("/ready")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": "ok", "migrations": "ok"}


async def test_metrics_are_prometheus_text(client: Any) -> None:
    await client.get("/health")
    r = await client.get("/metrics")
    assert r.status_code == 200
    assert "branchless_requests_total" in r.text


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
