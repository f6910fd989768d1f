"""PostgreSQL: the audit chain appended by one function, in one round trip.

``audit_append`` takes the chain's lock (the advisory lock every appender takes),
reads the chain's head (a new snapshot: it sees whatever committed before the
lock was granted), links the given entries after it and inserts them; the lock
is released when the calling statement's transaction ends. The caller gives
each entry's hashed content as canonical JSON (``app.audit``'s encoding); the
link is ``sha256(prev_hash || "\\n" || content)`` in hex, exactly as
``app.audit.entry_hash`` computes it, and ``branchless audit verify`` checks it
in Python. Appending under the lock inside one statement keeps the lock for
the shortest time: concurrent writers (several server processes) serialise
only there. SQLite (one process, one writer) appends from Python.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine.finder import engine_finder
from piccolo.engine.postgres import PostgresEngine

ID = "2026-11-27T15:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "audit_append: the chain appended under its lock by one function (PostgreSQL)"

LOCK_KEY = 1112686926  # app.audit._LOCK_KEY (0x4252414E), checked by a test

FUNCTION = f"""
CREATE OR REPLACE FUNCTION audit_append(
    p_at timestamptz[], p_actor_id integer[], p_actor_role varchar[], p_action varchar[],
    p_entity varchar[], p_entity_id varchar[], p_before_digest varchar[], p_after_digest varchar[],
    p_detail text[], p_ip varchar[], p_request_id varchar[], p_content text[]
) RETURNS integer[] LANGUAGE plpgsql VOLATILE AS $fn$
DECLARE
    prev text;
    ids integer[] := '{{}}';
    prevs text[] := '{{}}';
    hashes text[] := '{{}}';
BEGIN
    PERFORM pg_advisory_xact_lock({LOCK_KEY});
    SELECT entry_hash INTO prev FROM audit_entry ORDER BY id DESC LIMIT 1;
    prev := coalesce(prev, repeat('0', 64));
    FOR i IN 1 .. coalesce(cardinality(p_content), 0) LOOP
        ids := ids || nextval(pg_get_serial_sequence('audit_entry', 'id'))::integer;
        prevs := prevs || prev;
        prev := encode(sha256(convert_to(prev || E'\\n' || p_content[i], 'UTF8')), 'hex');
        hashes := hashes || prev;
    END LOOP;
    INSERT INTO audit_entry (id, at, actor_id, actor_role, action, entity, entity_id, before_digest,
                             after_digest, detail, ip, request_id, prev_hash, entry_hash)
    SELECT * FROM unnest(ids, p_at, p_actor_id, p_actor_role, p_action, p_entity, p_entity_id,
                         p_before_digest, p_after_digest, p_detail, p_ip, p_request_id, prevs, hashes);
    RETURN ids;
END
$fn$
"""  # noqa: S608 - a constant: only the lock key is formatted in
DROP = (
    "DROP FUNCTION IF EXISTS audit_append(timestamptz[], integer[], varchar[], varchar[], varchar[], varchar[], "
    "varchar[], varchar[], text[], varchar[], varchar[], text[])"
)


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="app", description=DESCRIPTION)

    async def create():
        engine = engine_finder()
        if isinstance(engine, PostgresEngine):
            await engine.run_ddl(FUNCTION)

    async def drop():
        engine = engine_finder()
        if isinstance(engine, PostgresEngine):
            await engine.run_ddl(DROP)

    manager.add_raw(create)
    manager.add_raw_backwards(drop)
    return manager
