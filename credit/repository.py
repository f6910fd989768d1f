"""Hand-written SQL of the decision hot path, for both databases.

``POST /api/credit/applications`` is the busiest endpoint: building a Piccolo
query costs more than PostgreSQL takes to answer it, and every round trip costs
a pool checkout. So the applicant's checks read in one parameterised query, and
the group commit (``credit.decisions``) writes whole batches with multi-row
inserts. The SQL here is the common subset of SQLite and PostgreSQL (Piccolo's
``{}`` placeholders), except where ids are allocated.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, Final

from piccolo.engine.postgres import PostgresEngine

from app.db import engine
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


# The taxpayer, the consent check (``credit.consent.active_consent``'s rule: in
# force today, its document completed) and the published version with the
# running experiment, in one round trip.
_APPLICANT_SQL: Final = (
    "SELECT t.id, t.taxpayer_id, t.customer, t.record_sha256, "
    "c.id AS consent_id, c.valid_from, c.expires_on, "
    "v.id AS champion_id, s.id AS setup_id, s.challenger AS challenger_id, s.share_bp, s.mode, s.salt "
    "FROM taxpayer t "
    "LEFT JOIN tax_consent c ON c.id = ("
    "SELECT c2.id FROM tax_consent c2 JOIN kyc_signed_document d ON d.id = c2.signed_document_id "
    "WHERE c2.taxpayer_id = t.taxpayer_id AND c2.valid_from <= {} AND c2.expires_on >= {} AND d.state = {} "
    "ORDER BY c2.id LIMIT 1) "
    "LEFT JOIN credit_ruleset_version v ON v.product = {} AND v.status = 'published' "
    "LEFT JOIN credit_challenger_setup s ON s.product = v.product AND s.active "
    "WHERE t.id = {}"
)


def _date(value: Any) -> date:
    return date.fromisoformat(value) if isinstance(value, str) else value


async def applicant(taxpayer_pk: int, product: str, today: date) -> Applicant | None:
    rows = await Taxpayer.raw(_APPLICANT_SQL, today, today, COMPLETED, product, taxpayer_pk)
    if not rows:
        return None
    row = rows[0]
    taxpayer = {k: row[k] for k in ("id", "taxpayer_id", "customer", "record_sha256")}
    consent = None
    if row["consent_id"] is not None:
        consent = (int(row["consent_id"]), _date(row["valid_from"]), _date(row["expires_on"]))
    setup = {k: row[k] for k in ("champion_id", "setup_id", "challenger_id", "share_bp", "mode", "salt")}
    return Applicant(taxpayer, consent, setup)


# --- batched writes (inside the caller's transaction) ------------------------------------------

_PG_IDS: Final = (
    "SELECT nextval(pg_get_serial_sequence('credit_application', 'id')) AS a, "
    "nextval(pg_get_serial_sequence('credit_decision', 'id')) AS d FROM generate_series(1, {})"
)
# SQLite: the IMMEDIATE transaction holds the database's only write lock, so the
# next ids are the current maxima plus one (what SQLite itself would assign).
_SQLITE_IDS: Final = (
    "SELECT (SELECT COALESCE(MAX(id), 0) FROM credit_application) AS a, "
    "(SELECT COALESCE(MAX(id), 0) FROM credit_decision) AS d"
)


async def allocate_ids(n: int) -> list[tuple[int, int]]:
    """``n`` fresh (application id, decision id) pairs."""
    if isinstance(engine(), PostgresEngine):
        rows = await LoanApplication.raw(_PG_IDS, n)
        return [(int(r["a"]), int(r["d"])) for r in rows]
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
