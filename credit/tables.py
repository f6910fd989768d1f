"""Tables of credit/: taxpayers and their filings as the tax authority shares them,
the consent that lets us ask, and the credit decisions made on them: versioned
rulesets, champion/challenger set-ups, applications, decisions and backtests.

The decision tables' foreign keys refuse deletion of what they point to
(``RESTRICT``, not Piccolo's default ``CASCADE``): an application, its
decision and the ruleset version that made it are records a bank keeps, and
no deletion elsewhere may take them along."""

from __future__ import annotations

from piccolo.columns import (
    JSON,
    BigInt,
    Boolean,
    Date,
    ForeignKey,
    Integer,
    OnDelete,
    Serial,
    Text,
    Timestamptz,
    Varchar,
)
from piccolo.table import Table

from app.tables import Account, Customer


class Taxpayer(Table, tablename="taxpayer"):
    """An enterprise (unified social credit code) or sole proprietor (resident ID)."""

    id = Serial(primary_key=True)

    taxpayer_id = Varchar(length=18, unique=True, index=True)
    customer = ForeignKey(references=Customer, null=True, default=None, index=True)
    name = Varchar(length=200)
    registered_on = Date()
    industry = Varchar(length=64)
    status = Varchar(length=16)
    grades = JSON(default="{}")
    """Yearly tax credit grades, e.g. ``{"2025": "A", "2024": "B"}``."""
    arrears_fen = BigInt(default=0)
    penalties_fen = BigInt(default=0)
    fetched_at = Timestamptz()
    kind = Varchar(length=16, default="enterprise")
    """``enterprise`` or ``sole_proprietor``: which check-digit scheme the id follows."""
    record_as_of = Date(null=True, default=None)
    """The date the authority produced the record these rows hold (none: entered by hand)."""
    record_sha256 = Varchar(length=64, default="")
    """Digest of that record: a fetch that returns the same record rewrites nothing."""


class TaxFiling(Table, tablename="tax_filing"):
    """One month's filing; money in integer fen."""

    id = Serial(primary_key=True)

    taxpayer = ForeignKey(references=Taxpayer, index=True)
    period = Varchar(length=7)
    """``YYYY-MM``."""
    vat_sales_fen = BigInt(default=0)
    vat_paid_fen = BigInt(default=0)
    income_tax_fen = BigInt(default=0)
    filed_on_time = Boolean(default=True)


class TaxConsent(Table, tablename="tax_consent"):
    """The taxpayer's consent to fetch their records from the tax authority: scope,
    validity, and the e-signed document that carries it."""

    id = Serial(primary_key=True)
    customer = ForeignKey(references=Customer, index=True)
    taxpayer_id = Varchar(length=18, index=True)
    scope = JSON(default="[]")
    valid_from = Date()
    expires_on = Date()
    signed_document_id = Integer(null=True, default=None)
    """The kyc signing-ceremony document (kept as an id: credit asks kyc, it does not own it)."""
    state = Varchar(length=24, default="awaiting_signature", index=True)
    created_at = Timestamptz()


class RulesetVersion(Table, tablename="credit_ruleset_version"):
    """One version of a product's decision table and where it stands in its
    lifecycle: ``draft -> submitted -> approved -> published -> retired``.

    The body is frozen from submission on, so a published or retired version
    decides (and replays) exactly what its approver approved. Two unique
    indexes are raw SQL in migration ``credit_2026_11_27t09_08_28_586427``
    (Piccolo declares neither a partial index nor, portably to SQLite, a
    multi-column constraint): ``(product, version)``, and ``product WHERE
    status = 'published'``, which lets the database itself refuse a second
    published version of a product.
    """

    id = Serial(primary_key=True)
    product = Varchar(length=40, index=True)
    version = Varchar(length=40)
    body = JSON()
    """The ruleset as its JSON (the form the editor loads and git keeps)."""
    status = Varchar(length=16, default="draft", index=True)
    based_on = Integer(null=True, default=None)
    """The version this draft was copied from, if any."""
    author = ForeignKey(references=Account, on_delete=OnDelete.restrict)
    submitted_by = ForeignKey(references=Account, null=True, default=None, on_delete=OnDelete.restrict)
    approved_by = ForeignKey(references=Account, null=True, default=None, on_delete=OnDelete.restrict)
    """Never the author: the four-eyes rule."""
    published_by = ForeignKey(references=Account, null=True, default=None, on_delete=OnDelete.restrict)
    review_note = Text(default="")
    created_at = Timestamptz()
    updated_at = Timestamptz()
    submitted_at = Timestamptz(null=True, default=None)
    approved_at = Timestamptz(null=True, default=None)
    published_at = Timestamptz(null=True, default=None)
    retired_at = Timestamptz(null=True, default=None)


class ChallengerSetup(Table, tablename="credit_challenger_setup"):
    """A champion/challenger experiment on one product: a share of live
    applications also (``shadow``) or instead (``split``) decided by an approved
    challenger version. At most one is active per product (a partial unique
    index, raw SQL in the migration); publishing a new version ends it, since its
    comparison would otherwise mix two champions."""

    id = Serial(primary_key=True)
    product = Varchar(length=40, index=True)
    champion = ForeignKey(references=RulesetVersion, on_delete=OnDelete.restrict)
    """The version published when the experiment started."""
    challenger = ForeignKey(references=RulesetVersion, on_delete=OnDelete.restrict)
    share_bp = Integer()
    """Share of applications in the challenger's arm, in basis points (10000 = all)."""
    mode = Varchar(length=8)
    salt = Varchar(length=64)
    """Seeds the arm assignment; a new experiment gets a new salt."""
    active = Boolean(default=True, index=True)
    created_by = ForeignKey(references=Account, on_delete=OnDelete.restrict)
    created_at = Timestamptz()
    ended_at = Timestamptz(null=True, default=None)


class LoanApplication(Table, tablename="credit_application"):
    """A customer's application for a tax-data loan. ``data_pending`` waits for
    the tax gateway (an outage is never a decline), ``decided`` has its
    ``Decision``, ``closed`` ended without one (the authority knows no such
    taxpayer, or the consent lapsed while waiting)."""

    id = Serial(primary_key=True)
    customer = ForeignKey(references=Customer, index=True, on_delete=OnDelete.restrict)
    taxpayer = ForeignKey(references=Taxpayer, index=True, on_delete=OnDelete.restrict)
    product = Varchar(length=40)
    amount_fen = BigInt()
    term_months = Integer()
    purpose = Varchar(length=32)
    state = Varchar(length=16)
    reason = Varchar(length=64, default="")
    """Why the application is pending or closed (a machine-readable code)."""
    attempts = Integer(default=0)
    """Calls made to the tax gateway for this application."""
    next_attempt_at = Timestamptz(null=True, default=None)
    """When the retry job calls the gateway again (pending applications; a partial index
    over just those serves the job, see migration ``2026-11-27T14:30:00``)."""
    created_at = Timestamptz()
    updated_at = Timestamptz()
    decided_at = Timestamptz(null=True, default=None)


class Decision(Table, tablename="credit_decision"):
    """The decision an application got, with everything needed to replay it:
    the ruleset version, the feature snapshot it was made on, and, under a
    champion/challenger set-up, the other ruleset's decision."""

    id = Serial(primary_key=True)
    application = ForeignKey(references=LoanApplication, unique=True, on_delete=OnDelete.restrict)  # unique: indexed
    product = Varchar(length=40, index=True)
    ruleset = ForeignKey(references=RulesetVersion, index=True, on_delete=OnDelete.restrict)
    """The version that decided (the challenger's, for its arm in ``split`` mode)."""
    arm = Varchar(length=12)
    """``champion`` or ``challenger`` (the application fell in the challenger's share)."""
    challenger_setup = ForeignKey(
        references=ChallengerSetup, null=True, default=None, index=True, on_delete=OnDelete.restrict
    )
    outcome = Varchar(length=8)
    limit_fen = BigInt()
    price_tier = Varchar(length=16, null=True, default=None)
    reasons = JSON(default="[]")
    rows_hit = JSON(default="[]")
    features = JSON()
    """The feature snapshot (``credit.engine.features.Features``)."""
    record_as_of = Date()
    shadow = JSON(null=True, default=None)
    """The other ruleset's decision, with its ``rulesetId``, for the challenger's share."""
    decided_at = Timestamptz(index=True)


class BacktestRun(Table, tablename="credit_backtest"):
    """A backtest a risk officer ran: which version against which champion, on
    which history, and the report (kept so the approver sees what the author saw)."""

    id = Serial(primary_key=True)
    ruleset = ForeignKey(references=RulesetVersion, index=True, on_delete=OnDelete.cascade)
    """A discarded draft takes its backtests with it."""
    champion = ForeignKey(references=RulesetVersion, null=True, default=None, on_delete=OnDelete.restrict)
    body_sha256 = Varchar(length=64)
    """The body the backtest ran on: a draft edited since shows no backtest rather than a stale one."""
    history = Varchar(length=200)
    history_sha256 = Varchar(length=64)
    applications = Integer()
    report = JSON()
    created_by = ForeignKey(references=Account, on_delete=OnDelete.restrict)
    created_at = Timestamptz()
