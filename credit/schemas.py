"""Structs of credit/ that cross the HTTP boundary.

Money travels as a ``Decimal`` string in yuan (``"250000.00"``); the service
turns it into integer fen once, at the edge. Reports computed by the engine
(backtests, population stability) keep the engine's snake_case keys: they are
the same objects the CLI prints, and one spelling per report is easier to read
against it than two.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Final, Literal, get_args

from msgspec import Meta

from app.schemas import Base
from credit.engine.backtest import BacktestReport
from credit.engine.psi import PsiResult
from credit.engine.ruleset import Ruleset

PRODUCT_PATTERN: Final = r"^[a-z][a-z0-9_]{0,39}$"
Product = Annotated[str, Meta(pattern=PRODUCT_PATTERN)]
MIN_AMOUNT: Final = Decimal("1000")
"""Yuan: below this a tax loan costs more to book than it is worth."""
MAX_AMOUNT: Final = Decimal("10000000")
"""Yuan: far above any product's cap; the ruleset's own ceiling decides the limit."""
FEN: Final = Decimal("0.01")
Purpose = Literal["working_capital", "inventory", "equipment", "expansion", "other"]
ApplicationState = Literal["data_pending", "decided", "closed"]
RulesetStatus = Literal["draft", "submitted", "approved", "published", "retired"]
Mode = Literal["shadow", "split"]


def _member(kind: Any, value: str) -> Any:
    """``value`` as a member of the ``Literal`` ``kind``; a stored value outside
    it is a bug worth a loud error, not a silent cast."""
    if value not in get_args(kind):
        raise ValueError(f"{value!r} is not one of {get_args(kind)}")
    return value


def ruleset_status(value: str) -> RulesetStatus:
    result: RulesetStatus = _member(RulesetStatus, value)
    return result


def application_state(value: str) -> ApplicationState:
    result: ApplicationState = _member(ApplicationState, value)
    return result


def challenger_mode(value: str) -> Mode:
    result: Mode = _member(Mode, value)
    return result


def yuan(fen: int) -> Decimal:
    """Integer fen as yuan with two decimals (exact)."""
    return (Decimal(fen) / 100).quantize(FEN)


class FilingOut(Base):
    period: str
    vat_sales: str
    vat_paid: str
    income_tax: str
    filed_on_time: bool


class TaxpayerOut(Base):
    id: int
    taxpayer_id: str
    name: str
    registered_on: date
    industry: str
    status: str
    grades: dict[str, str]
    arrears: str
    penalties: str
    filings: list[FilingOut]


class TaxConsentCreate(Base):
    taxpayer_pk: int
    months: Annotated[int, Meta(ge=1, le=36)] = 12


class TaxConsentOut(Base):
    id: int
    taxpayer_id: str
    scope: list[str]
    valid_from: date
    expires_on: date
    signed_document_id: int


# --- applications and decisions ---------------------------------------------------


class ApplicationCreate(Base, kw_only=True):
    """A loan application: the customer's own taxpayer (for a business loan, the
    enterprise whose unified social credit code is its taxpayer id), the amount
    in yuan, the term and the purpose."""

    taxpayer_pk: int
    amount: Decimal
    """Yuan as a string, at most two decimals, e.g. ``"300000.00"``."""
    term_months: Annotated[int, Meta(ge=1, le=36)]
    purpose: Purpose
    product: Product = "tax_loan"

    def __post_init__(self) -> None:
        amount = self.amount
        if not amount.is_finite():
            raise ValueError("amount: must be a number of yuan")
        if amount != amount.quantize(FEN):
            raise ValueError("amount: at most two decimals (whole fen)")
        if not MIN_AMOUNT <= amount <= MAX_AMOUNT:
            raise ValueError(f"amount: between {MIN_AMOUNT} and {MAX_AMOUNT} yuan")

    @property
    def amount_fen(self) -> int:
        return int(self.amount * 100)


class DecisionTerms(Base):
    """What a ruleset said about one application."""

    outcome: str
    limit_fen: int
    price_tier: str | None
    reasons: list[str]
    rows_hit: list[int]


class DecisionOut(Base):
    id: int
    outcome: str
    limit: Decimal
    """Yuan; 0 for a decline."""
    price_tier: str | None
    reasons: list[str]
    product: str
    ruleset_id: int
    ruleset_version: str
    arm: str
    decided_at: datetime


class ApplicationOut(Base):
    id: int
    state: ApplicationState
    product: str
    taxpayer_pk: int
    taxpayer_id: str
    amount: Decimal
    term_months: int
    purpose: str
    reason: str | None
    """Why the application waits (``data_pending``) or was closed: a code."""
    retry_at: datetime | None
    created_at: datetime
    decision: DecisionOut | None


class ReplayOut(Base):
    """A stored decision recomputed from its snapshot with its own ruleset version."""

    decision_id: int
    ruleset_id: int
    identical: bool
    differences: list[str]
    """Names of the terms that differ (empty when identical)."""
    stored: DecisionTerms
    replayed: DecisionTerms
    shadow_identical: bool | None
    """The other ruleset's recorded decision, replayed too (none without one)."""
    arm_identical: bool | None
    """Whether the application still falls in the same arm of its experiment."""


# --- rulesets ------------------------------------------------------------------------


class StaffRef(Base):
    id: int
    name: str


class RulesetSummary(Base):
    id: int
    product: str
    version: str
    status: RulesetStatus
    description: str
    rows: int
    author: StaffRef | None
    approved_by: StaffRef | None
    created_at: datetime
    updated_at: datetime
    published_at: datetime | None
    retired_at: datetime | None


class RulesetDetail(Base):
    id: int
    product: str
    version: str
    status: RulesetStatus
    based_on: int | None
    author: StaffRef | None
    submitted_by: StaffRef | None
    approved_by: StaffRef | None
    published_by: StaffRef | None
    review_note: str
    created_at: datetime
    updated_at: datetime
    submitted_at: datetime | None
    approved_at: datetime | None
    published_at: datetime | None
    retired_at: datetime | None
    body: Ruleset


class ReviewNote(Base):
    note: Annotated[str, Meta(min_length=1, max_length=2000)]


class BacktestOut(Base):
    id: int
    ruleset_id: int
    champion_id: int | None
    """The published version compared against; none: the history's own decisions."""
    history: str
    applications: int
    created_at: datetime
    report: BacktestReport


# --- champion / challenger, monitoring, relief -------------------------------------------


class ChallengerCreate(Base, kw_only=True):
    product: Product = "tax_loan"
    challenger_id: int
    share: Annotated[float, Meta(gt=0.0, le=1.0)]
    """Share of applications in the challenger's arm (0.1 = one in ten)."""
    mode: Mode


class ChallengerOut(Base):
    id: int
    product: str
    champion_id: int
    challenger_id: int
    share: float
    mode: Mode
    active: bool
    created_at: datetime
    ended_at: datetime | None


class ArmOut(Base):
    arm: str
    ruleset: str
    applications: int
    approval_rate: float
    refer_rate: float
    decline_rate: float
    average_limit: Decimal | None


class SwapCellOut(Base):
    champion: str
    challenger: str
    applications: int


class GradeOut(Base):
    grade: str
    applications: int
    champion_approval_rate: float
    challenger_approval_rate: float


class ChallengerReportOut(Base):
    """Champion against challenger on the applications decided under one set-up.

    Bad rates and losses need repayment history, which live applications do
    not have yet: this report compares what each ruleset decided."""

    setup: ChallengerOut
    decisions: int
    in_challenger_share: int
    arms: list[ArmOut]
    """``split``: each arm as decided. ``shadow``: both rulesets on the challenger's share."""
    swap_matrix: list[SwapCellOut]
    """Champion outcome against challenger outcome, on the challenger's share."""
    by_grade: list[GradeOut]


class PsiReportOut(Base):
    product: str
    baseline: str
    """The history the rulesets are backtested on."""
    baseline_applications: int
    live_applications: int
    since: datetime
    reliable: bool
    """False below ``MIN_LIVE`` decisions: with few applications the index is mostly noise."""
    features: list[PsiResult]


class ReliefCandidateOut(Base):
    taxpayer_pk: int
    taxpayer_id: str
    name: str
    industry: str
    customer_id: int | None
    latest_period: str | None
    recent_sales: Decimal
    year_before_sales: Decimal
    sales_change: float
    """As a fraction: -0.45 is a 45% fall against the same months a year before."""
