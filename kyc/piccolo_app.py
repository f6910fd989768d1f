"""Piccolo app of kyc/."""

from pathlib import Path

from piccolo.conf.apps import AppConfig

from kyc.tables import FaceConsent, FaceTemplate, IdentityDocument, KycCase, KycEvidence, SignedDocument

APP_CONFIG = AppConfig(
    app_name="kyc",
    migrations_folder_path=str(Path(__file__).parent.parent / "migrations" / "kyc"),
    table_classes=[FaceConsent, IdentityDocument, FaceTemplate, KycCase, KycEvidence, SignedDocument],
    migration_dependencies=["app.piccolo_app"],
    commands=[],
)
