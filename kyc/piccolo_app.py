"""Piccolo app of kyc/ (its tables arrive with its issue)."""

from pathlib import Path

from piccolo.conf.apps import AppConfig

APP_CONFIG = AppConfig(
    app_name="kyc",
    migrations_folder_path=str(Path(__file__).parent.parent / "migrations" / "kyc"),
    table_classes=[],
    migration_dependencies=["app.piccolo_app"],
    commands=[],
)
