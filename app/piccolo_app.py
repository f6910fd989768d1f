"""Piccolo app of the platform core."""

from pathlib import Path

from piccolo.conf.apps import AppConfig

from app.tables import Account, AuditEntry, AuthToken, Customer, Notification

APP_CONFIG = AppConfig(
    app_name="app",
    migrations_folder_path=str(Path(__file__).parent.parent / "migrations" / "app"),
    table_classes=[Account, Customer, AuthToken, AuditEntry, Notification],
    migration_dependencies=[],
    commands=[],
)
