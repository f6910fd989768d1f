"""Operations endpoints: liveness, readiness (database and migrations), metrics."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, get
from litestar.plugins.prometheus import PrometheusConfig, PrometheusController
from piccolo.apps.migrations.tables import Migration

from app.db import ping
from app.schemas import Health

PROMETHEUS = PrometheusConfig(app_name="branchless", prefix="branchless", group_path=True, exclude=["/metrics"])


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
