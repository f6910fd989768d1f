"""The ``branchless`` command line: serve, migrate, seed, staff, audit, keys.

Domains add their own command groups (``kyc``, ``sign``, ``credit`` ...) here as
their issues land.
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import click

T = TypeVar("T")


def _settings() -> Any:
    from app.settings import SettingsError, get_settings

    try:
        return get_settings()
    except SettingsError as exc:
        raise click.ClickException(f"bad setting {exc}") from None


def _run(factory: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine with the database pool open around it."""
    from app import db

    async def main() -> T:
        await db.start_pool()
        try:
            return await factory()
        finally:
            await db.close_pool()

    return asyncio.run(main())


@click.group()
def main() -> None:
    """Branchless: remote loans and claims servicing."""


@main.command()
@click.option("--host", default=None, help="Interface to bind (default from settings).")
@click.option("--port", default=None, type=int, help="Port (default from settings).")
@click.option("--no-jobs", is_flag=True, help="Do not run background jobs in this process.")
@click.option(
    "--workers",
    default=None,
    type=click.IntRange(min=1),
    help="Server processes sharing the port (default BRANCHLESS_WEB_WORKERS, 1); more than one needs PostgreSQL.",
)
def serve(host: str | None, port: int | None, no_jobs: bool, workers: int | None) -> None:
    """Serve the web app and API."""
    import os

    import uvicorn

    from app.factory import create_app

    settings = _settings()
    workers = workers or settings.web_workers
    try:
        if workers == 1:
            app = create_app(settings, run_jobs=not no_jobs)
            _freeze_startup_objects()
            uvicorn.run(
                app, host=host or settings.host, port=port or settings.port, log_config=None, proxy_headers=False
            )
            return
        if not settings.is_postgres:
            raise click.ClickException(
                "several server processes need PostgreSQL: the embedded SQLite mode serves from one process"
            )
        # Each worker process builds its own app (pool, caches, group commit) from
        # the same settings; on PostgreSQL every worker may run jobs (the queue is shared).
        os.environ[_SERVE_JOBS_ENV] = "0" if no_jobs else "1"
        uvicorn.run(
            "app.cli:served_app",
            factory=True,
            workers=workers,
            host=host or settings.host,
            port=port or settings.port,
            log_config=None,
            proxy_headers=False,
        )
    finally:
        from app.cpu import POOL

        POOL.shutdown()  # the pool's workers must not outlive the server


_SERVE_JOBS_ENV = "BRANCHLESS_SERVE_JOBS"


def served_app() -> Any:
    """The app of one ``serve --workers N`` process (uvicorn imports it by name)."""
    import os

    from app.factory import create_app

    app = create_app(_settings(), run_jobs=os.environ.get(_SERVE_JOBS_ENV, "1") == "1")
    _freeze_startup_objects()
    return app


def _freeze_startup_objects() -> None:
    """Everything loaded so far (modules, the app, its routes) lives as long as the server
    process: keep it out of the garbage collector's generations, so that collections during
    requests walk only what requests allocate. (Servers only: a test process builds many
    apps that must stay collectable.)"""
    import gc

    gc.collect()
    gc.freeze()


@main.command()
def worker() -> None:
    """Run background jobs only (PostgreSQL deployments scale these separately)."""
    from app.factory import create_app

    settings = _settings()
    if not settings.is_postgres:
        raise click.ClickException("a separate worker needs PostgreSQL; the embedded mode runs jobs in `serve`")
    app = create_app(settings, run_jobs=True)

    async def forever() -> None:
        async with app.lifespan():
            await asyncio.Event().wait()

    asyncio.run(forever())


async def migrate_all() -> None:
    """Apply every domain's Piccolo migrations, and PgQueuer's schema on PostgreSQL."""
    from piccolo.apps.migrations.commands.forwards import run_forwards

    from app.jobs import install_queue_schema

    result = await run_forwards(app_name="all")
    if not result.success:
        raise click.ClickException(f"migration failed: {result.message}")
    settings = _settings()
    if settings.is_postgres:
        await install_queue_schema(settings.database_url)


@main.command()
def migrate() -> None:
    """Apply database migrations."""
    _settings()
    _run(migrate_all)
    click.echo("migrations applied")


@main.command()
def seed() -> None:
    """Create demo data (one account per role, a customer with a policy and tax records)."""
    from app.seed import seed as run_seed

    settings = _settings()
    if settings.environment == "production":
        raise click.ClickException("refusing to seed demo accounts in production")
    logins = _run(run_seed)
    click.echo(f"Demo logins (password for all: {logins[0].password}):")
    for login in logins:
        click.echo(f"  {login.role:<16} {login.email}")


@main.command("create-staff")
@click.option("--email", required=True)
@click.option("--name", "display_name", required=True)
@click.option(
    "--role", required=True, type=click.Choice(["account_manager", "risk_officer", "claims_adjuster", "admin"])
)
@click.password_option()
def create_staff(email: str, display_name: str, role: str, password: str) -> None:
    """Create a staff account."""
    import msgspec

    from app.accounts import create_staff as create
    from app.db import transaction
    from app.errors import AppError
    from app.schemas import StaffCreate

    _settings()
    try:
        data = msgspec.convert(
            {"email": email, "password": password, "displayName": display_name, "role": role}, StaffCreate
        )
    except msgspec.ValidationError as exc:
        raise click.ClickException(str(exc)) from None

    async def go() -> int:
        async with transaction():
            return await create(data)

    try:
        account_id = _run(go)
    except AppError as exc:
        raise click.ClickException(exc.message) from None
    click.echo(f"staff account {account_id} created ({role})")


@main.group()
def audit() -> None:
    """The hash-chained audit log."""


@audit.command("verify")
def audit_verify() -> None:
    """Check the whole chain; exit 1 naming the first broken entry."""
    from app.audit import verify

    _settings()
    report = _run(verify)
    click.echo(
        json.dumps({"ok": report.ok, "entries": report.entries, "broken_id": report.broken_id, "reason": report.reason})
    )
    if not report.ok:
        click.echo(f"audit chain broken at entry {report.broken_id}: {report.reason}", err=True)
        sys.exit(1)


@main.group()
def keys() -> None:
    """Encryption keys of personal data."""


@keys.command("generate")
def keys_generate() -> None:
    """Print a fresh 256-bit key (base64) for BRANCHLESS_ENCRYPTION_KEYS."""
    click.echo(base64.b64encode(secrets.token_bytes(32)).decode())


@keys.command("rotate")
def keys_rotate() -> None:
    """Re-encrypt every value under the active (first) key."""
    import app.accounts  # noqa: F401  (registers the core's encrypted columns)
    from app.crypto import rotate_keys

    _settings()
    counts = _run(rotate_keys)
    click.echo(json.dumps({"reencrypted": counts}))


def _attach_domain_commands() -> None:
    """The domains' command groups, as the factory assembles them."""
    from app.factory import domain_commands

    for group in domain_commands():
        main.add_command(group)


_attach_domain_commands()

if __name__ == "__main__":
    main()
