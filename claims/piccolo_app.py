"""Piccolo app of claims/."""

from pathlib import Path

from piccolo.conf.apps import AppConfig

from claims.tables import Policy

APP_CONFIG = AppConfig(
    app_name="claims",
    migrations_folder_path=str(Path(__file__).parent.parent / "migrations" / "claims"),
    table_classes=[Policy],
    migration_dependencies=["app.piccolo_app"],
    commands=[],
)
