"""A decision's application had two indexes: the unique constraint's and a plain one
(``unique=True`` with ``index=True``). The unique one serves every lookup; the
other only cost a second index insertion on each decision, the busiest write."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.columns.column_types import ForeignKey

ID = "2026-11-27T14:30:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "drop the decision's redundant application index"


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="credit", description=DESCRIPTION)
    manager.alter_column(
        table_class_name="Decision",
        tablename="credit_decision",
        column_name="application",
        db_column_name="application",
        params={"index": False},
        old_params={"index": True},
        column_class=ForeignKey,
        old_column_class=ForeignKey,
        schema=None,
    )
    return manager
