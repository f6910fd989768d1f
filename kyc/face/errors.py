"""Errors that face processing reports to callers: one class per reason, each with a stable ``code``.

The API, the CLI and the KYC case all need to tell the customer *what* to fix ("more light",
"hold still", "only you in the picture"), so every refusal carries a machine-readable code
and a human message, and the classes survive pickling (they cross the process-pool boundary).
"""

from __future__ import annotations

from typing import Any, ClassVar


class FaceError(Exception):
    """Base of every refusal by the face pipeline; ``code`` is stable and machine-readable."""

    code: ClassVar[str] = "face_error"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword details would be lost by the default exception pickling in a worker process.
        return (_rebuild, (type(self), self.message, self.details))

    def as_dict(self) -> dict[str, Any]:
        return {"error": self.code, "message": self.message, **({"details": self.details} if self.details else {})}


def _rebuild(cls: type[FaceError], message: str, details: dict[str, Any]) -> FaceError:
    return cls(message, **details)


class ImageError(FaceError):
    """The uploaded bytes are not an image we accept."""

    code = "invalid_image"


class UnsupportedFormat(ImageError):
    code = "unsupported_format"


class ImageTooLarge(ImageError):
    code = "image_too_large"


class DecompressionBomb(ImageTooLarge):
    code = "decompression_bomb"


class CorruptImage(ImageError):
    code = "corrupt_image"


class NoFace(FaceError):
    code = "no_face"


class MultipleFaces(FaceError):
    code = "multiple_faces"


class FaceTooSmall(FaceError):
    code = "face_too_small"


class TooDark(FaceError):
    code = "too_dark"


class TooBlurred(FaceError):
    code = "too_blurred"


class NotEnoughFrames(FaceError):
    """A video verification had too few usable frames to decide on several of them."""

    code = "not_enough_frames"


class TemplateMismatch(FaceError):
    """Two templates come from different engines or model versions and cannot be compared."""

    code = "template_mismatch"
