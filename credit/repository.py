"""Hand-written SQL of the decision hot path, for both databases.

``POST /api/credit/applications`` is the busiest endpoint: building a Piccolo
query costs more than PostgreSQL takes to answer it, and every round trip costs
a pool checkout. So the applicant's checks read in one parameterised query, and
the group commit (``credit.decisions``) writes whole batches with multi-row
inserts.

On PostgreSQL both go to asyncpg directly, as statements of constant text that
each connection prepares once: the applicants of concurrent requests in one
query, and a batch in two round trips (its ids; then one statement inserting
the applications, their decisions and, through ``audit_append``, their audit
entries, all from arrays). On SQLite (one process, one writer) the same batch
goes through Piccolo with the common SQL below (``{}`` placeholders).
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, Final

from piccolo.engine.postgres import PostgresEngine

from app import audit
from app.db import engine, pg_connection
from credit.group_commit import GroupCommit, per_loop
from credit.tables import Decision, LoanApplication, Taxpayer
from kyc.signatures import COMPLETED


@dataclass(frozen=True, slots=True)
class Applicant:
    """A taxpayer, the consent in force for it (if any) and its product's live set-up."""

    taxpayer: dict[str, Any]
    """``id``, ``taxpayer_id``, ``customer``, ``record_sha256``."""
    consent: tuple[int, date, date] | None
    """The oldest fully signed consent in force: id, valid from, expires on."""
    setup: dict[str, Any]
    """The columns of ``credit.challengers._LIVE_SQL`` (``champion_id`` None: nothing published)."""


def _applicant_sql(source: str, today: str, completed: str, product: str, *, first: str = "") -> str:
    """The taxpayer, the consent check (``credit.consent.active_consent``'s rule: in
    force ``today``, its document ``completed``) and the ``product``'s published
    version with its running experiment, for the taxpayers of ``source`` (``t``);
    ``first``: columns selected before those."""
    return (
        f"SELECT {first}t.id, t.taxpayer_id, t.customer, t.record_sha256, "  # noqa: S608 - constant fragments; values are parameters
        "c.id AS consent_id, c.valid_from, c.expires_on, "
        "v.id AS champion_id, s.id AS setup_id, s.challenger AS challenger_id, s.share_bp, s.mode, s.salt "
        f"FROM {source} "
        "LEFT JOIN tax_consent c ON c.id = ("
        "SELECT c2.id FROM tax_consent c2 JOIN kyc_signed_document d ON d.id = c2.signed_document_id "
        f"WHERE c2.taxpayer_id = t.taxpayer_id AND c2.valid_from <= {today} AND c2.expires_on >= {today} "
        f"AND d.state = {completed} ORDER BY c2.id LIMIT 1) "
        f"LEFT JOIN credit_ruleset_version v ON v.product = {product} AND v.status = 'published' "
        "LEFT JOIN credit_challenger_setup s ON s.product = v.product AND s.active"
    )


# One applicant (SQLite; Piccolo's placeholders, in this order: today, today, completed,
# product, taxpayer).
_APPLICANT_SQL: Final = _applicant_sql("taxpayer t", "{}", "{}", "{}") + " WHERE t.id = {}"
# The applicants of concurrent requests in one round trip (PostgreSQL): row ``n`` of the
# arrays is the n-th request's (taxpayer, product, day); missing taxpayers have no row.
_APPLICANTS_PG: Final = _applicant_sql(
    "unnest($1::integer[], $2::varchar[], $3::date[]) WITH ORDINALITY AS q(pk, product, today, n) "
    "JOIN taxpayer t ON t.id = q.pk",
    "q.today",
    "$4",
    "q.product",
    first="q.n, ",
)


def _date(value: Any) -> date:
    return date.fromisoformat(value) if isinstance(value, str) else value


def is_direct() -> bool:
    """Whether the hot path speaks to asyncpg directly (PostgreSQL)."""
    return isinstance(engine(), PostgresEngine)


async def applicant(taxpayer_pk: int, product: str, today: date) -> Applicant | None:
    """The applicant's checks in one query; on PostgreSQL, concurrent requests' in one
    round trip (``GroupCommit`` batches the reads as it batches the writes)."""
    if is_direct():
        return await per_loop(_readers, lambda: GroupCommit(_read_applicants, 256)).submit(
            (taxpayer_pk, product, today)
        )
    rows = await Taxpayer.raw(_APPLICANT_SQL, today, today, COMPLETED, product, taxpayer_pk)
    return _applicant(rows[0]) if rows else None


def _applicant(row: Any) -> Applicant:
    taxpayer = {k: row[k] for k in ("id", "taxpayer_id", "customer", "record_sha256")}
    consent = None
    if row["consent_id"] is not None:
        consent = (int(row["consent_id"]), _date(row["valid_from"]), _date(row["expires_on"]))
    setup = {k: row[k] for k in ("champion_id", "setup_id", "challenger_id", "share_bp", "mode", "salt")}
    return Applicant(taxpayer, consent, setup)


_readers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, GroupCommit[Any, Applicant | None]] = (
    weakref.WeakKeyDictionary()
)


async def _read_applicants(batch: list[tuple[int, str, date]]) -> list[Applicant | Exception | None]:
    async with pg_connection() as connection:
        rows = await connection.fetch(
            _APPLICANTS_PG, [b[0] for b in batch], [b[1] for b in batch], [b[2] for b in batch], COMPLETED
        )
    found = {int(row["n"]): _applicant(row) for row in rows}
    return [found.get(n) for n in range(1, len(batch) + 1)]


# --- batched writes on SQLite (inside the caller's transaction) ------------------------------------------

# SQLite: the IMMEDIATE transaction holds the database's only write lock, so the
# next ids are the current maxima plus one (what SQLite itself would assign).
_SQLITE_IDS: Final = (
    "SELECT (SELECT COALESCE(MAX(id), 0) FROM credit_application) AS a, "
    "(SELECT COALESCE(MAX(id), 0) FROM credit_decision) AS d"
)


async def allocate_ids(n: int) -> list[tuple[int, int]]:
    """``n`` fresh (application id, decision id) pairs (SQLite, inside the batch's
    transaction; PostgreSQL batches take theirs in ``write_batch_pg``)."""
    row = (await LoanApplication.raw(_SQLITE_IDS))[0]
    a, d = int(row["a"]), int(row["d"])
    return [(a + i, d + i) for i in range(1, n + 1)]


APPLICATION_COLUMNS: Final = (
    "id",
    "customer",
    "taxpayer",
    "product",
    "amount_fen",
    "term_months",
    "purpose",
    "state",
    "reason",
    "attempts",
    "next_attempt_at",
    "created_at",
    "updated_at",
    "decided_at",
)
DECISION_COLUMNS: Final = (
    "id",
    "application",
    "product",
    "ruleset",
    "arm",
    "challenger_setup",
    "outcome",
    "limit_fen",
    "price_tier",
    "reasons",
    "rows_hit",
    "features",
    "record_as_of",
    "shadow",
    "decided_at",
)
_ROWS_PER_INSERT: Final = 500  # at most 15 parameters a row: inside both databases' limits


async def _insert(
    table: type[LoanApplication] | type[Decision], columns: Sequence[str], rows: list[tuple[Any, ...]]
) -> None:
    one = "(" + ", ".join("{}" for _ in columns) + ")"
    head = f"INSERT INTO {table._meta.tablename} ({', '.join(columns)}) VALUES "  # noqa: S608 - constant names; values are parameters
    for start in range(0, len(rows), _ROWS_PER_INSERT):
        chunk = rows[start : start + _ROWS_PER_INSERT]
        await table.raw(head + ", ".join([one] * len(chunk)), *(v for row in chunk for v in row))


async def insert_applications(rows: list[tuple[Any, ...]]) -> None:
    """Rows of ``APPLICATION_COLUMNS`` values."""
    await _insert(LoanApplication, APPLICATION_COLUMNS, rows)


async def insert_decisions(rows: list[tuple[Any, ...]]) -> None:
    """Rows of ``DECISION_COLUMNS`` values (JSON columns as JSON text)."""
    await _insert(Decision, DECISION_COLUMNS, rows)


# --- PostgreSQL: a whole batch in two round trips ----------------------------------------------

_PG_IDS: Final = (
    "SELECT nextval(pg_get_serial_sequence('credit_application', 'id')) AS a, "
    "nextval(pg_get_serial_sequence('credit_decision', 'id')) AS d FROM generate_series(1, $1)"
)

_PG_TYPES: Final = {
    "credit_application": dict.fromkeys(APPLICATION_COLUMNS, "varchar")
    | dict.fromkeys(("id", "customer", "taxpayer", "term_months", "attempts"), "integer")
    | {"amount_fen": "bigint"}
    | dict.fromkeys(("next_attempt_at", "created_at", "updated_at", "decided_at"), "timestamptz"),
    "credit_decision": dict.fromkeys(DECISION_COLUMNS, "varchar")
    | dict.fromkeys(("id", "application", "ruleset", "challenger_setup"), "integer")
    | {"limit_fen": "bigint", "record_as_of": "date", "decided_at": "timestamptz"}
    | dict.fromkeys(("reasons", "rows_hit", "features", "shadow"), "json"),
}


def _unnest_insert(table: str, columns: Sequence[str], first: int) -> str:
    """``INSERT INTO table`` of rows given as one array parameter per column, from ``$first``
    (JSON columns travel as text and are cast back)."""
    types = _PG_TYPES[table]
    arrays = ", ".join(f"${first + i}::{'text' if types[c] == 'json' else types[c]}[]" for i, c in enumerate(columns))
    values = ", ".join(f"u.{c}::json" if types[c] == "json" else f"u.{c}" for c in columns)
    names = ", ".join(columns)
    return f"INSERT INTO {table} ({names}) SELECT {values} FROM unnest({arrays}) AS u({names})"  # noqa: S608 - constant names; values are parameters


_PG_BATCH_INSERT: Final = (
    f"WITH a AS ({_unnest_insert('credit_application', APPLICATION_COLUMNS, 1)}), "
    f"d AS ({_unnest_insert('credit_decision', DECISION_COLUMNS, 1 + len(APPLICATION_COLUMNS))}) "
    f"SELECT {audit.pg_append_call(1 + len(APPLICATION_COLUMNS) + len(DECISION_COLUMNS))}"
)
"""The batch's applications, decisions and audit entries in one statement, so one
transaction: the decisions' foreign keys are checked at its end, when the
applications are in; ``audit_append`` chains the entries under the chain's lock,
which the statement holds only from that call to its commit."""

Prepare = Callable[[list[tuple[int, int]]], tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], list[dict[str, Any]]]]
"""Given (application id, decision id) pairs, the batch's application rows, decision
rows and audit entries (``audit.entry``), for the items that could be decided."""


def _columns(rows: list[tuple[Any, ...]]) -> list[list[Any]]:
    """Rows (at least one) as one list per column: the statement's array parameters."""
    return [list(column) for column in zip(*rows, strict=True)]


async def write_batch_pg(n: int, prepare: Prepare) -> None:
    """Write ``n`` decisions on PostgreSQL: their ids (sequences, no transaction needed),
    then ``prepare`` decides them here, then one statement stores everything."""
    async with pg_connection() as connection:
        assert not connection.is_in_transaction(), "a batch is its own transaction"
        ids = [(int(r["a"]), int(r["d"])) for r in await connection.fetch(_PG_IDS, n)]
        applications, decisions, entries = prepare(ids)
        if applications:
            await connection.execute(
                _PG_BATCH_INSERT,
                *_columns(applications),
                *_columns(decisions),
                *audit.pg_append_args(entries),
            )
