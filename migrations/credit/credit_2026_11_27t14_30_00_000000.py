"""Fewer index insertions on the busiest write, a decided application.

- A decision's application had two indexes: the unique constraint's and a plain
  one (``unique=True`` with ``index=True``). The unique one serves every lookup.
- The retry job's only question of applications is "which pending ones are
  due?" (``state = 'data_pending'`` and ``next_attempt_at`` past). Full indexes
  on ``state`` and on ``next_attempt_at`` took an insertion each for every
  decided application to serve it; one partial index holds only the pending ones
  (the same SQL on SQLite 3.8+ and PostgreSQL).
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.columns.column_types import ForeignKey, Timestamptz, Varchar
from piccolo.engine.finder import engine_finder

ID = "2026-11-27T14:30:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "drop the decision's redundant application index; one partial index of pending applications"

DUE = "credit_application_due"
UNINDEXED = (
    ("Decision", "credit_decision", "application", ForeignKey),
    ("LoanApplication", "credit_application", "state", Varchar),
    ("LoanApplication", "credit_application", "next_attempt_at", Timestamptz),
)


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
    for table_class_name, tablename, column, column_class in UNINDEXED:
        manager.alter_column(
            table_class_name=table_class_name,
            tablename=tablename,
            column_name=column,
            db_column_name=column,
            params={"index": False},
            old_params={"index": True},
            column_class=column_class,
            old_column_class=column_class,
            schema=None,
        )
    return manager
