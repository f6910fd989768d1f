"""Loan applications decided in the request that submits them, and replayed later.

Two steps, so that no transaction is open while the tax gateway is called:
``gather`` checks ownership and the signed consent, finds what decides the
product (published version, champion/challenger set-up) and fetches the
record; ``record``, inside the caller's transaction, refreshes the stored tax
rows, decides on the record's features and writes the application, its
decision and the audit entry together. A gateway outage parks the application
in ``data_pending`` for the retry job (``credit.jobs``), which goes through
the same two steps: an outage is never turned into a decline.

This is the hot path of the busiest endpoint: the published version is
compiled once per process and the stored tax rows are rewritten only when the
authority's record changed.
"""

from __future__ import annotations

import asyncio
import hashlib
import weakref
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import msgspec
from piccolo.columns.combination import WhereRaw
from piccolo.engine.postgres import PostgresEngine

from app import audit, context
from app.db import engine, transaction
from app.errors import Forbidden, NotFound
from app.schemas import Base
from app.security import Principal, Role
from credit import repository
from credit.challengers import LiveSetup, live_setup, setup_of
from credit.engine.champion import decide_live
from credit.engine.errors import TaxpayerNotFound
from credit.engine.features import features_of
from credit.engine.provider import DataPending
from credit.engine.records import TaxConsent as ConsentTerms
from credit.engine.records import TaxRecord
from credit.engine.rules import Decision as Terms
from credit.group_commit import GroupCommit, per_loop
from credit.schemas import (
    ApplicationCreate,
    ApplicationOut,
    DecisionOut,
    application_state,
    yuan,
)
from credit.service import consent_terms, fetch_record, store_record
from credit.tables import Decision, LoanApplication, Taxpayer

DATA_PENDING: Final = "data_pending"
DECIDED: Final = "decided"
CLOSED: Final = "closed"
MAX_BACKOFF: Final = timedelta(hours=1)


class TaxConsentRequired(Forbidden):
    """No fully signed, unexpired tax-data consent covers the taxpayer: the
    gateway may not be asked, so nothing can be decided."""

    code = "tax_consent_missing"


class ApplicationNotFound(NotFound):
    code = "application_not_found"


class DecisionNotFound(NotFound):
    code = "decision_not_found"


class TaxpayerUnknown(NotFound):
    code = "taxpayer_not_found"


class ShadowDecision(Base):
    """The other ruleset's decision of an application in the challenger's share."""

    ruleset_id: int
    decision: Terms


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Gathered:
    """Everything ``record`` needs, collected outside the transaction."""

    application_id: int | None
    """None for a new application, else the pending one being retried."""
    terms: dict[str, Any]
    """``customer``, ``product``, ``amount_fen``, ``term_months``, ``purpose``."""
    taxpayer: dict[str, Any]
    setup: LiveSetup | None
    result: TaxRecord | DataPending | TaxpayerNotFound | TaxConsentRequired


_TAXPAYER_COLUMNS: Final = (Taxpayer.id, Taxpayer.taxpayer_id, Taxpayer.customer, Taxpayer.record_sha256)


async def gather(principal: Principal, data: ApplicationCreate) -> Gathered:
    """Checks and the gateway call for a new application (no transaction needed):
    ownership, the consent and the live set-up come from one query."""
    found = await repository.applicant(data.taxpayer_pk, data.product, _now().date())
    if found is None or found.taxpayer["customer"] != principal.customer_id or principal.customer_id is None:
        raise TaxpayerUnknown("no such taxpayer")
    terms = {
        "customer": principal.customer_id,
        "product": data.product,
        "amount_fen": data.amount_fen,
        "term_months": data.term_months,
        "purpose": data.purpose,
    }
    if found.consent is None:
        raise TaxConsentRequired("sign the tax-data consent for this taxpayer (and have it countersigned)")
    setup = await setup_of(data.product, found.setup)
    consent_id, valid_from, expires_on = found.consent
    taxpayer_id = found.taxpayer["taxpayer_id"]
    consent = ConsentTerms.from_dates(f"TC-{consent_id:08d}", taxpayer_id, valid_from, expires_on)
    return Gathered(None, terms, found.taxpayer, setup, await fetch_record(taxpayer_id, consent))


async def _gather(app_id: int | None, terms: dict[str, Any], taxpayer: dict[str, Any]) -> Gathered:
    consent = await consent_terms(taxpayer["taxpayer_id"])
    if consent is None:
        missing = TaxConsentRequired("sign the tax-data consent for this taxpayer (and have it countersigned)")
        if app_id is None:
            raise missing
        return Gathered(app_id, terms, taxpayer, None, missing)  # lapsed while the application waited
    setup = await live_setup(terms["product"])
    return Gathered(app_id, terms, taxpayer, setup, await fetch_record(taxpayer["taxpayer_id"], consent))


async def submit(g: Gathered) -> ApplicationOut:
    """Decide and store a new application gathered by ``gather``.

    The steady state (a decision on a record already stored) goes through this
    process's group commit: it shares a transaction, and one acquisition of the
    audit chain's lock, with the decisions of concurrent requests, and returns
    once that transaction committed. Everything else (a changed record to
    store, a gateway outage, an unknown taxpayer) takes a transaction of its
    own through ``record``."""
    result = g.result
    if (
        g.application_id is None
        and g.setup is not None
        and isinstance(result, TaxRecord)
        and _record_digest(result) == g.taxpayer["record_sha256"]
    ):
        return await _group_commit().submit(_NewDecision(g, result, _now(), context.current()))
    async with transaction():
        out = await record(g)
    assert out is not None  # a new application is never "no longer pending"
    return out


def _record_digest(result: TaxRecord) -> str:
    return hashlib.sha256(_encode(result)).hexdigest()


async def record(g: Gathered) -> ApplicationOut | None:
    """Write the outcome of ``g`` (inside the caller's transaction).

    For a retry, None when the application is no longer pending (another
    worker got there first)."""
    now = _now()
    result = g.result
    attempts = 1
    if g.application_id is not None:
        prior = await _pending_for_update(g.application_id)
        if prior is None:
            return None
        attempts = prior + 1
    state, reason, retry_at = DECIDED, "", None
    if isinstance(result, DataPending):
        state, reason, retry_at = DATA_PENDING, result.reason, now + min(result.retry_after * attempts, MAX_BACKOFF)
    elif not isinstance(result, TaxRecord):
        state, reason = CLOSED, result.code
    values: dict[str, Any] = {
        "state": state,
        "reason": reason,
        "attempts": attempts,
        "next_attempt_at": retry_at,
        "updated_at": now,
        "decided_at": now if state == DECIDED else None,
    }
    app_id = g.application_id
    if app_id is None:
        row = LoanApplication(**{"taxpayer": g.taxpayer["id"], "created_at": now, **g.terms, **values})
        app_id = int((await LoanApplication.insert(row))[0]["id"])
    else:
        await LoanApplication.update({getattr(LoanApplication, k): v for k, v in values.items()}).where(
            LoanApplication.id == app_id
        )
    if not isinstance(result, TaxRecord):
        action = "credit.application_pending" if state == DATA_PENDING else "credit.application_closed"
        await audit.record(action, "credit_application", app_id, detail={"reason": reason})
        return await application_out(app_id)
    assert g.setup is not None
    await store_record(g.taxpayer, result, now)
    decision = await _decide_and_store(app_id, g.terms["product"], g.setup, result, now)
    await audit.append([_decided_entry(decision, app_id)])
    if g.application_id is not None:
        return await application_out(app_id, decision=decision)
    # a new application: everything is at hand, no need to read it back
    return _decided_out(app_id, g, decision, now)


def _decided_out(app_id: int, g: Gathered, decision: DecisionOut, now: datetime) -> ApplicationOut:
    """A new application as just decided, from what the request gathered."""
    return ApplicationOut(
        id=app_id,
        state=DECIDED,
        product=g.terms["product"],
        taxpayer_pk=g.taxpayer["id"],
        taxpayer_id=g.taxpayer["taxpayer_id"],
        amount=yuan(g.terms["amount_fen"]),
        term_months=g.terms["term_months"],
        purpose=g.terms["purpose"],
        reason=None,
        retry_at=None,
        created_at=now,
        decision=decision,
    )


async def _pending_for_update(application_id: int) -> int | None:
    """The attempts made so far, if the application still waits (row locked on PostgreSQL)."""
    query = LoanApplication.select(LoanApplication.state, LoanApplication.attempts).where(
        LoanApplication.id == application_id
    )
    if isinstance(engine(), PostgresEngine):
        query = query.lock_rows()
    row = await query.first()
    if row is None or row["state"] != DATA_PENDING:
        return None
    return int(row["attempts"])


_encode = msgspec.json.encode


def _decide(
    app_id: int, decision_id: int, *, product: str, setup: LiveSetup, record: TaxRecord, now: datetime
) -> tuple[dict[str, Any], DecisionOut]:
    """The decision of application ``app_id``: its row's values and its output."""
    features = features_of(record)
    live = decide_live(setup.champion, setup.challenger, setup.config, str(app_id), features)
    challenger_decides = live.arm == "challenger" and setup.config is not None and setup.config.mode == "split"
    ruleset_id = setup.challenger_id if challenger_decides and setup.challenger_id is not None else setup.champion_id
    other_id = setup.champion_id if challenger_decides else setup.challenger_id
    shadow = None
    if live.other is not None and other_id is not None:
        shadow = _encode(ShadowDecision(ruleset_id=other_id, decision=live.other)).decode()
    d = live.effective
    values = {
        "application": app_id,
        "product": product,
        "ruleset": ruleset_id,
        "arm": live.arm,
        "challenger_setup": setup.setup_id,
        "outcome": d.outcome,
        "limit_fen": d.limit_fen,
        "price_tier": d.price_tier,
        "reasons": _encode(d.reasons).decode(),
        "rows_hit": _encode(d.rows_hit).decode(),
        "features": _encode(features).decode(),
        "record_as_of": record.as_of,
        "shadow": shadow,
        "decided_at": now,
    }
    out = DecisionOut(
        id=decision_id,
        outcome=d.outcome,
        limit=yuan(d.limit_fen),
        price_tier=d.price_tier,
        reasons=d.reasons,
        product=product,
        ruleset_id=ruleset_id,
        ruleset_version=d.ruleset_version,
        arm=live.arm,
        decided_at=now,
    )
    return values, out


async def _decide_and_store(
    app_id: int, product: str, setup: LiveSetup, record: TaxRecord, now: datetime
) -> DecisionOut:
    values, out = _decide(app_id, 0, product=product, setup=setup, record=record, now=now)
    rows = await Decision.insert(Decision(**values))
    out.id = int(rows[0]["id"])
    return out


def _decided_entry(decision: DecisionOut, app_id: int, ctx: context.RequestContext | None = None) -> dict[str, Any]:
    return audit.entry(
        "credit.application_decided",
        "credit_application",
        app_id,
        after={"outcome": decision.outcome, "limit": str(decision.limit), "ruleset": decision.ruleset_id},
        detail={"decision": decision.id, "ruleset": decision.ruleset_id, "arm": decision.arm},
        ctx=ctx,
    )


# --- the group commit of new decisions -----------------------------------------------------


@dataclass(frozen=True, slots=True)
class _NewDecision:
    """A new application to decide on a stored record, queued for a group commit."""

    g: Gathered
    record: TaxRecord
    now: datetime
    ctx: context.RequestContext
    """The submitting request's context: the audit entry's actor, IP and request id."""


async def _write_decisions(batch: list[_NewDecision]) -> list[ApplicationOut | Exception]:
    """One transaction for the whole batch: ids, then the applications, decisions and
    their audit entries (chained under one lock) in multi-row inserts; ``prepare``
    decides the batch once its ids are known."""
    results: list[ApplicationOut | Exception] = []

    def prepare(
        ids: list[tuple[int, int]],
    ) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], list[dict[str, Any]]]:
        results.clear()  # (a retried batch prepares again)
        applications: list[tuple[Any, ...]] = []
        decisions: list[tuple[Any, ...]] = []
        entries: list[dict[str, Any]] = []
        for item, (app_id, decision_id) in zip(batch, ids, strict=True):
            g, now = item.g, item.now
            assert g.setup is not None
            try:
                values, decision = _decide(
                    app_id, decision_id, product=g.terms["product"], setup=g.setup, record=item.record, now=now
                )
            except Exception as exc:  # this application's own failure: the others go on
                results.append(exc)
                continue
            applications.append(
                (
                    app_id,
                    g.terms["customer"],
                    g.taxpayer["id"],
                    g.terms["product"],
                    g.terms["amount_fen"],
                    g.terms["term_months"],
                    g.terms["purpose"],
                    DECIDED,
                    "",
                    1,
                    None,
                    now,
                    now,
                    now,
                )
            )
            decisions.append((decision_id, *(values[c] for c in repository.DECISION_COLUMNS[1:])))
            entries.append(_decided_entry(decision, app_id, item.ctx))
            results.append(_decided_out(app_id, g, decision, now))
        return applications, decisions, entries

    if repository.is_direct():
        await repository.write_batch_pg(len(batch), prepare)
        return results
    async with transaction():
        applications, decisions, entries = prepare(await repository.allocate_ids(len(batch)))
        if applications:
            await repository.insert_applications(applications)
            await repository.insert_decisions(decisions)
            await audit.append(entries)
    return results


_writers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, GroupCommit[_NewDecision, ApplicationOut]] = (
    weakref.WeakKeyDictionary()
)


def _group_commit() -> GroupCommit[_NewDecision, ApplicationOut]:
    """This event loop's writer (one per process in a server; tests run many loops)."""
    from app.settings import get_settings

    return per_loop(_writers, lambda: GroupCommit(_write_decisions, get_settings().decision_batch_max))


# --- reading -------------------------------------------------------------------------------


async def application_out(app_id: int, *, decision: DecisionOut | None = None) -> ApplicationOut:
    row = (
        await LoanApplication.select(
            *LoanApplication.all_columns(), LoanApplication.taxpayer.taxpayer_id.as_alias("taxpayer_code")
        )
        .where(LoanApplication.id == app_id)
        .first()
    )
    if row is None:
        raise ApplicationNotFound("no such application")
    if decision is None and row["state"] == DECIDED:
        decision = await _decision_out(app_id)
    return ApplicationOut(
        id=row["id"],
        state=application_state(row["state"]),
        product=row["product"],
        taxpayer_pk=row["taxpayer"],
        taxpayer_id=row["taxpayer_code"],
        amount=yuan(row["amount_fen"]),
        term_months=row["term_months"],
        purpose=row["purpose"],
        reason=row["reason"] or None,
        retry_at=row["next_attempt_at"] if row["state"] == DATA_PENDING else None,
        created_at=row["created_at"],
        decision=decision,
    )


async def _decision_out(app_id: int) -> DecisionOut | None:
    row = (
        await Decision.select(*Decision.all_columns(), Decision.ruleset.version.as_alias("ruleset_version"))
        .where(Decision.application == app_id)
        .first()
    )
    if row is None:
        return None
    return DecisionOut(
        id=row["id"],
        outcome=row["outcome"],
        limit=yuan(row["limit_fen"]),
        price_tier=row["price_tier"],
        reasons=json_list(row["reasons"]),
        product=row["product"],
        ruleset_id=row["ruleset"],
        ruleset_version=row["ruleset_version"],
        arm=row["arm"],
        decided_at=row["decided_at"],
    )


def json_list(value: Any) -> list[Any]:
    return list(msgspec.json.decode(value) if isinstance(value, str | bytes) else value)


async def visible_application(principal: Principal, app_id: int) -> ApplicationOut:
    """A customer sees only their own applications (another's answers like a
    missing one); staff reads are audited."""
    owner = await LoanApplication.select(LoanApplication.customer).where(LoanApplication.id == app_id).first()
    if owner is None or (principal.role == Role.customer and owner["customer"] != principal.customer_id):
        raise ApplicationNotFound("no such application")
    if principal.is_staff:
        await audit.record("credit.application_viewed", "credit_application", app_id)
    return await application_out(app_id)


# --- pending applications (the retry job) ---------------------------------------------------


async def due_pending(limit: int = 200) -> list[int]:
    """Pending applications whose next gateway attempt is due (the state as a literal:
    both databases then use the partial index of pending applications)."""
    rows = (
        await LoanApplication.select(LoanApplication.id)
        .where(WhereRaw(f"state = '{DATA_PENDING}'") & (LoanApplication.next_attempt_at <= _now()))
        .order_by(LoanApplication.next_attempt_at)
        .limit(limit)
    )
    return [int(r["id"]) for r in rows]


async def gather_retry(application_id: int) -> Gathered | None:
    """The gateway call for a pending application; None when it no longer waits
    or is not due yet. A consent that lapsed in the meantime closes it; a
    product left without a published version keeps it waiting (the job fails
    and the next sweep offers it again)."""
    app = await LoanApplication.select().where(LoanApplication.id == application_id).first()
    if app is None or app["state"] != DATA_PENDING:
        return None
    if app["next_attempt_at"] is not None and app["next_attempt_at"] > _now():
        return None
    taxpayer = await Taxpayer.select(*_TAXPAYER_COLUMNS).where(Taxpayer.id == app["taxpayer"]).first()
    assert taxpayer is not None
    terms = {k: app[k] for k in ("customer", "product", "amount_fen", "term_months", "purpose")}
    return await _gather(application_id, terms, taxpayer)
