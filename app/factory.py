"""The app factory: the one place that assembles the platform and its domains."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from litestar import Litestar
from litestar.config.csrf import CSRFConfig
from litestar.datastructures import State
from litestar.di import Provide
from litestar.middleware.base import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.static_files import create_static_files_router
from litestar.template.config import TemplateConfig

from app import cpu, db
from app.controllers import API_CONTROLLERS, API_DEPENDENCIES
from app.errors import EXCEPTION_HANDLERS
from app.jobs import JobKind, JobRunner
from app.logs import configure_logging
from app.middleware import BearerAwareCSRFMiddleware, request_context_middleware
from app.ops import PROMETHEUS, MetricsController, OpsController
from app.secrets import load_secrets
from app.security import authentication_middleware
from app.settings import Settings, get_settings
from app.web import HomePanel, WebController


def _domains() -> tuple[list[Any], list[JobKind], list[HomePanel], list[Path]]:
    """Controllers, job kinds and home panels of every domain (the only import of
    domains in app/)."""
    from app.notifications import JOBS as core_jobs
    from app.panels import PANELS as core_panels
    from claims.controllers import CONTROLLERS as claims_controllers
    from claims.controllers import PANELS as claims_panels
    from credit.controllers import CONTROLLERS as credit_controllers
    from credit.controllers import PANELS as credit_panels
    from credit.controllers import TEMPLATES as credit_templates
    from credit.jobs import JOBS as credit_jobs
    from kyc.controllers import CONTROLLERS as kyc_controllers
    from kyc.controllers import PANELS as kyc_panels
    from kyc.controllers import TEMPLATES as kyc_templates
    from kyc.jobs import JOBS as kyc_jobs
    from video.controllers import CONTROLLERS as video_controllers
    from video.controllers import PANELS as video_panels
    from video.controllers import TEMPLATES as video_templates
    from video.jobs import JOBS as video_jobs

    return (
        [*kyc_controllers, *claims_controllers, *credit_controllers, *video_controllers],
        [*core_jobs, *kyc_jobs, *credit_jobs, *video_jobs],
        [*core_panels, *kyc_panels, *claims_panels, *credit_panels, *video_panels],
        [kyc_templates, credit_templates, video_templates],
    )


def domain_lifespans() -> list[Any]:
    """Domains' own start-up/shutdown (after the database and the job runner are up)."""
    from video.hub import lifespan as video_lifespan

    return [video_lifespan]


def domain_seeders() -> list[Any]:
    """Each domain's ``seed_demo(customer_id)`` for ``branchless seed``."""
    from claims.seed import seed_demo as claims_seed
    from credit.seed import seed_demo as credit_seed
    from video.seed import seed_demo as video_seed

    return [claims_seed, credit_seed, video_seed]


def domain_commands() -> list[Any]:
    """The domains' click groups for the ``branchless`` command line."""
    from credit.cli import credit
    from kyc.cli import kyc
    from kyc.signing.cli import sign

    return [credit, kyc, sign]


def create_app(settings: Settings | None = None, *, run_jobs: bool = True) -> Litestar:
    settings = settings or get_settings()
    configure_logging(settings.log_level, settings.log_json)
    cpu.configure(settings.cpu_workers)
    secret = load_secrets(settings).secret_key
    domain_controllers, job_kinds, panels, template_dirs = _domains()
    jobs = JobRunner(settings, job_kinds)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        await db.start_pool()
        await jobs.start(run_worker=run_jobs)
        try:
            yield
        finally:
            await jobs.stop()
            await db.close_pool()
            # The CPU pool belongs to the process, not to one app: it is shut
            # down at interpreter exit by concurrent.futures itself.

    csrf = CSRFConfig(
        secret=secret,
        cookie_name="branchless_csrf",
        cookie_secure=settings.secure_cookies,
        cookie_samesite="lax",
        header_name="x-csrftoken",
    )
    return Litestar(
        route_handlers=[
            OpsController,
            MetricsController,
            WebController,
            *API_CONTROLLERS,
            *domain_controllers,
            create_static_files_router(
                path="/static", directories=[Path(__file__).parent / "static"], include_in_schema=False
            ),
        ],
        dependencies={**API_DEPENDENCIES, "jobs": Provide(lambda: jobs, sync_to_thread=False)},
        middleware=[
            request_context_middleware,
            PROMETHEUS.middleware,
            DefineMiddleware(BearerAwareCSRFMiddleware, config=csrf),
            authentication_middleware,
        ],
        exception_handlers=EXCEPTION_HANDLERS,
        template_config=TemplateConfig(
            directory=[Path(__file__).parent / "templates", *template_dirs], engine=JinjaTemplateEngine
        ),
        openapi_config=OpenAPIConfig(
            title="Branchless API",
            version="0.1.0",
            path="/schema",
            render_plugins=[SwaggerRenderPlugin()],
            components=Components(security_schemes={"bearer": SecurityScheme(type="http", scheme="bearer")}),
            security=[{"bearer": []}],
        ),
        lifespan=[lifespan, *domain_lifespans()],
        state=State({"jobs": jobs, "settings": settings, "panels": panels, "readiness": {}}),
        request_max_body_size=settings.max_request_body_bytes,
        debug=False,
        logging_config=None,
    )


def app_from_env() -> Litestar:
    """Entry point for ASGI servers (``uvicorn --factory app.factory:app_from_env``)."""
    return create_app()


__all__ = ["app_from_env", "create_app"]
