"""Piccolo app of credit/."""

from pathlib import Path

from piccolo.conf.apps import AppConfig

from credit.tables import (
    BacktestRun,
    ChallengerSetup,
    Decision,
    LoanApplication,
    RulesetVersion,
    TaxConsent,
    TaxFiling,
    Taxpayer,
)

APP_CONFIG = AppConfig(
    app_name="credit",
    migrations_folder_path=str(Path(__file__).parent.parent / "migrations" / "credit"),
    table_classes=[
        Taxpayer,
        TaxFiling,
        TaxConsent,
        RulesetVersion,
        ChallengerSetup,
        LoanApplication,
        Decision,
        BacktestRun,
    ],
    migration_dependencies=["app.piccolo_app"],
    commands=[],
)
