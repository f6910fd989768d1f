"""Errors of the credit engine, placed in the platform's hierarchy so one
handler maps them to HTTP with a machine-readable body."""

from __future__ import annotations

from typing import ClassVar

from app.errors import AppError, FieldError, Forbidden, Invalid, NotFound


class RulesetInvalid(Invalid):
    """A decision table that does not validate. ``fields`` carries every
    problem found, each with a path such as ``rows[3].conditions[1].value``,
    so the browser editor can mark all the offending cells at once."""

    code = "ruleset_invalid"

    def __init__(self, fields: list[FieldError]):
        first = fields[0] if fields else FieldError(path="", message="invalid ruleset")
        super().__init__(f"{first.path}: {first.message}" if first.path else first.message, fields=fields)


class ImportIssue(FieldError, frozen=True):
    """One bad cell of an imported file: ``row`` counts data rows from 1 (the
    header is not a row), ``path`` is the column name."""

    row: int = 0


class ImportFailed(Invalid):
    """A records or history file with bad data; nothing of it is imported,
    because a half-imported batch is harder to repair than a rejected one."""

    code = "import_failed"

    def __init__(self, source: str, issues: list[ImportIssue], *, truncated: bool = False):
        first = issues[0]
        where = [f"row {first.row}"] if first.row else []
        where += [f"column {first.path}"] if first.path else []
        more = f" (and {len(issues) - 1} more{'+' if truncated else ''})" if len(issues) > 1 else ""
        place = f" {', '.join(where)}:" if where else ""
        super().__init__(f"{source}:{place} {first.message}{more}", fields=list(issues))
        self.issues = issues


class ConsentMissing(Forbidden):
    """No recorded consent covers this fetch: the gateway must not be called."""

    code = "tax_consent_missing"


class TaxpayerNotFound(NotFound):
    """The tax authority answered and knows no such taxpayer: a definite answer,
    unlike the transient errors below."""

    code = "taxpayer_not_found"


class ProviderError(AppError):
    """The gateway did not give an answer. Transient by nature: the application
    waits in "data pending" and is retried; it is never declined for this."""

    status_code: ClassVar[int] = 503
    code = "tax_data_unavailable"
    retryable: ClassVar[bool] = True


class ProviderUnavailable(ProviderError):
    code = "tax_data_unavailable"


class ProviderTimeout(ProviderError):
    status_code: ClassVar[int] = 504
    code = "tax_data_timeout"
