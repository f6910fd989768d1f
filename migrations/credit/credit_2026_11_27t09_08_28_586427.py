"""Unique indexes of credit/ that Piccolo's table API cannot declare portably.

A product's version names are unique, at most one version of a product is
published, and at most one champion/challenger set-up of a product is active.
The service keeps these rules inside a transaction (with the product's rows
locked on PostgreSQL); the indexes make the database refuse a breach even if
two requests race. The SQL is the same on SQLite (3.8+) and PostgreSQL. (Piccolo's
multi-column ``Unique`` constraint is an ``ALTER TABLE ... ADD CONSTRAINT``,
which SQLite does not have.) A raw migration of its own, because a
migration's raw steps run before its tables are created.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine.finder import engine_finder

ID = "2026-11-27T09:08:28:586427"
VERSION = "1.38.0"
DESCRIPTION = "unique versions, one published version and one active experiment per product"

INDEXES = {
    "credit_ruleset_version_product_version": (
        "CREATE UNIQUE INDEX credit_ruleset_version_product_version ON credit_ruleset_version (product, version)"
    ),
    "credit_ruleset_version_one_published": (
        "CREATE UNIQUE INDEX credit_ruleset_version_one_published "
        "ON credit_ruleset_version (product) WHERE status = 'published'"
    ),
    "credit_challenger_setup_one_active": (
        "CREATE UNIQUE INDEX credit_challenger_setup_one_active "
        "ON credit_challenger_setup (product) WHERE active"
    ),
}


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="credit", description=DESCRIPTION)

    async def create():
        engine = engine_finder()
        for statement in INDEXES.values():
            await engine.run_ddl(statement)

    async def drop():
        engine = engine_finder()
        for name in INDEXES:
            await engine.run_ddl(f"DROP INDEX IF EXISTS {name}")

    manager.add_raw(create)
    manager.add_raw_backwards(drop)
    return manager
