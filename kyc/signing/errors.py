"""Errors raised by the signing package, each with a stable machine-readable ``code``.

They mirror the shape of ``app.errors.AppError`` (``code``, ``status_code``, ``message``) without
importing it: the package must stay importable in worker processes and the CLI without pulling in
the web stack. The application maps them to HTTP bodies by ``code``.
"""

from __future__ import annotations

from typing import ClassVar


class SigningError(Exception):
    """Base class: something the caller can act on (bad input, bad configuration)."""

    code: ClassVar[str] = "signing_error"
    status_code: ClassVar[int] = 400

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code  # type: ignore[misc]  # narrows the class default per instance

    def as_dict(self) -> dict[str, str]:
        """The JSON error body shared by the CLI and, later, the HTTP API."""
        return {"error": self.code, "message": self.message}


class InvalidPdf(SigningError):
    """The bytes are not a usable PDF: not a PDF, malformed, encrypted, too large, too many pages."""

    code = "invalid_pdf"
    status_code = 422


class NotAPdf(InvalidPdf):
    code = "not_pdf"


class MalformedPdf(InvalidPdf):
    code = "malformed_pdf"


class EncryptedPdf(InvalidPdf):
    """Refused: an encrypted file cannot be shown to the signer as-is or re-verified by third parties."""

    code = "encrypted_pdf"


class PdfTooLarge(InvalidPdf):
    code = "pdf_too_large"
    status_code = 413


class TooManyPages(InvalidPdf):
    code = "too_many_pages"
    status_code = 413


class ForeignSignatures(InvalidPdf):
    """Already signed elsewhere, without our audit trail page: adding one would break those signatures."""

    code = "foreign_signatures"
    status_code = 409


class BrokenSignatures(InvalidPdf):
    """Countersigning refused: an earlier signature is altered, or content follows the last one."""

    code = "existing_signatures_invalid"
    status_code = 409


class InvalidInput(SigningError):
    """Document data or signing evidence failed validation."""

    code = "invalid_input"
    status_code = 422


class DocumentChanged(SigningError):
    """The bytes to sign differ from the bytes the signer was shown."""

    code = "document_changed"
    status_code = 409


class KeyConfigError(SigningError):
    """Signing keys or trust roots could not be loaded; details never include secrets."""

    code = "key_config"
    status_code = 500


class TimestampError(SigningError):
    """The timestamp authority could not be reached or answered badly."""

    code = "timestamp_unavailable"
    status_code = 503


class FontUnavailable(SigningError):
    """No CJK-capable TrueType font is installed, so Chinese text cannot be rendered."""

    code = "cjk_font_missing"
    status_code = 500
