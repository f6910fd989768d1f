"""Errors of kyc/, mapped to HTTP by app/errors."""

from __future__ import annotations

from app.errors import Conflict, Forbidden, Invalid, NotFound


class CaseNotFound(NotFound):
    code = "kyc_case_not_found"


class ConsentRequired(Forbidden):
    """Face processing needs its own, separate consent first."""

    code = "face_consent_required"


class CaseClosed(Conflict):
    code = "kyc_case_closed"


class DocumentMissing(Conflict):
    code = "kyc_document_missing"


class BadDocument(Invalid):
    code = "invalid_document"


class FaceRejected(Invalid):
    """The image was read but its face fails a quality gate (no face, two faces,
    too small, too dark, too blurred); ``code`` is the gate's own code."""
