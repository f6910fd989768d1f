"""Piccolo app of video/: live sessions, recordings, appointment slots."""

from pathlib import Path

from piccolo.conf.apps import AppConfig

from video.tables import AppointmentSlot, SessionRecording, VideoSession

APP_CONFIG = AppConfig(
    app_name="video",
    migrations_folder_path=str(Path(__file__).parent.parent / "migrations" / "video"),
    table_classes=[AppointmentSlot, VideoSession, SessionRecording],
    migration_dependencies=["app.piccolo_app", "kyc.piccolo_app"],
    commands=[],
)
