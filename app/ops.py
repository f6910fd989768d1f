"""Operations endpoints: liveness, readiness (database and migrations), metrics."""

from __future__ import annotations

import time
from typing import Any

from litestar import Controller, Request, Response, get
from litestar.enums import ScopeType
from litestar.plugins.prometheus import PrometheusConfig, PrometheusController, PrometheusMiddleware
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from piccolo.apps.migrations.tables import Migration

from app.db import ping
from app.schemas import Health


class _Metrics(PrometheusMiddleware):
    """Litestar's request metrics (same names and labels) without its per-request
    costs: no ``Request`` object, and each label set's children looked up once.

    Labels: method, route template (never the raw path: ids would explode the
    series), status code, app name."""

    def __init__(self, app: ASGIApp, config: PrometheusConfig) -> None:
        super().__init__(app, config)
        self._children: dict[tuple[str, str, int], tuple[Any, Any, Any | None]] = {}
        self._in_progress: dict[tuple[str, str], Any] = {}

    def _labels(self, method: str, path: str, status: int) -> dict[str, str | int | float]:
        return {"method": method, "path": path, "status_code": status, "app_name": self._config.app_name}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        method = scope["method"] if scope["type"] == ScopeType.HTTP else scope["type"]
        path = scope.get("path_template") or scope["path"]
        gauge = self._in_progress.get((method, path))
        if gauge is None:
            labels = self._labels(method, path, 200)
            gauge = self.requests_in_progress(labels).labels(*labels.values())
            self._in_progress[(method, path)] = gauge
        status = 200
        started = time.perf_counter()
        duration = 0.0

        async def measured_send(message: Message) -> None:
            nonlocal status, duration
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                duration = time.perf_counter() - started
            await send(message)

        gauge.inc()
        try:
            await self.app(scope, receive, measured_send)
        finally:
            gauge.dec()
            key = (method, path, status)
            children = self._children.get(key)
            if children is None:
                labels = self._labels(method, path, status)
                values = [*labels.values()]
                errors = self.requests_error_count(labels).labels(*values) if status >= 500 else None
                children = (
                    self.request_count(labels).labels(*values),
                    self.request_time(labels).labels(*values),
                    errors,
                )
                self._children[key] = children
            count, timing, errors = children
            if errors is not None:
                errors.inc()
            count.inc()
            timing.observe(duration)


PROMETHEUS = PrometheusConfig(
    app_name="branchless", prefix="branchless", group_path=True, exclude=["/metrics"], middleware_class=_Metrics
)


class MetricsController(PrometheusController):
    path = "/metrics"
    include_in_schema = False


async def pending_migrations() -> list[str]:
    """Migration ids present in the code but not applied to the database."""
    from piccolo.apps.migrations.commands.base import BaseMigrationManager

    manager = BaseMigrationManager()
    missing: list[str] = []
    ran_any = await Migration.table_exists()
    for app_name in manager.get_sorted_app_names():
        app_config = manager.get_app_config(app_name)
        known = {m.ID for m in manager.get_migration_modules(app_config.resolved_migrations_folder_path).values()}
        applied = set(await Migration.get_migrations_which_ran(app_name=app_name)) if ran_any else set()
        missing += sorted(known - applied)
    return missing


class OpsController(Controller):
    tags = ["operations"]

    @get("/health", operation_id="health")
    async def health(self) -> Health:
        """The process is up (no dependencies checked)."""
        return Health(status="ok")

    @get("/ready", operation_id="ready")
    async def ready(self, request: Request[Any, Any, Any]) -> Response[Health]:
        """Ready for traffic: the database answers, every migration is applied, and each
        domain's dependency (e.g. the media server) answers where it is required."""
        checks: dict[str, str] = {}
        optional: set[str] = set()
        for name, probe in request.app.state.readiness.items():
            try:
                status, required = await probe()
            except Exception as exc:  # readiness reports any failure instead of raising it
                status, required = f"error: {type(exc).__name__}", True
            checks[name] = status
            if not required:
                optional.add(name)
        try:
            await ping()
            checks["database"] = "ok"
            missing = await pending_migrations()
            checks["migrations"] = "ok" if not missing else f"{len(missing)} pending"
        except Exception as exc:  # readiness reports any failure instead of raising it
            checks["database"] = f"error: {type(exc).__name__}"
        ok = all(v == "ok" for k, v in checks.items() if k not in optional)
        return Response(Health(status="ok" if ok else "unavailable", checks=checks), status_code=200 if ok else 503)
