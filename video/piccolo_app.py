"""Piccolo app of video/ (its tables arrive with its issue)."""

from pathlib import Path

from piccolo.conf.apps import AppConfig

APP_CONFIG = AppConfig(
    app_name="video",
    migrations_folder_path=str(Path(__file__).parent.parent / "migrations" / "video"),
    table_classes=[],
    migration_dependencies=["app.piccolo_app"],
    commands=[],
)
