"""Pending applications are found by one partial index instead of two full ones.

The retry job's only question is "which pending applications are due?"
(``state = 'data_pending'`` and ``next_attempt_at`` past). Full indexes on
``state`` and on ``next_attempt_at`` took an insertion each for every decided
application, the busiest write, to serve it; a partial index holds only the
pending ones. The SQL is the same on SQLite (3.8+) and PostgreSQL.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.columns.column_types import Timestamptz, Varchar
from piccolo.engine.finder import engine_finder

ID = "2026-11-27T14:50:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "one partial index of pending applications"

DUE = "credit_application_due"


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="credit", description=DESCRIPTION)

    async def create():
        await engine_finder().run_ddl(
            f"CREATE INDEX {DUE} ON credit_application (next_attempt_at) WHERE state = 'data_pending'"
        )

    async def drop():
        await engine_finder().run_ddl(f"DROP INDEX IF EXISTS {DUE}")

    manager.add_raw(create)
    manager.add_raw_backwards(drop)
    for column, column_class in (("state", Varchar), ("next_attempt_at", Timestamptz)):
        manager.alter_column(
            table_class_name="LoanApplication",
            tablename="credit_application",
            column_name=column,
            db_column_name=column,
            params={"index": False},
            old_params={"index": True},
            column_class=column_class,
            old_column_class=column_class,
            schema=None,
        )
    return manager
