"""Errors of the media core, carrying Janus's own error codes so callers can map them.

The signalling layer maps these to its HTTP/WebSocket answers: ``JanusUnavailable``
becomes "media server down, retry", ``VideoRoomUnauthorized`` a refusal, and so on.
Codes are Janus's (core: ``apierror.h``; VideoRoom: ``JANUS_VIDEOROOM_ERROR_*``).
"""

from __future__ import annotations


class MediaError(Exception):
    """Base of every error raised by ``video.media``."""


class JanusError(MediaError):
    """Janus answered with an error; ``code`` is Janus's numeric code."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"Janus error {code}: {reason}")
        self.code = code
        self.reason = reason


class JanusUnavailable(MediaError):
    """Janus's API cannot be reached (not started, crashed, restarted): retry later."""


class JanusTimeout(MediaError):
    """Janus did not answer a request or deliver an awaited event in time."""


class JanusStartError(MediaError):
    """The Janus process exited or never answered while starting; the message has its log tail."""


class JanusUnauthorized(JanusError):
    """403: wrong or missing API secret (a configuration fault, never a user's)."""


class JanusSessionNotFound(JanusError):
    """458: the Janus session expired or Janus restarted; everything on it is gone."""


class JanusHandleNotFound(JanusError):
    """459: the plugin handle was detached (hangup, room destroyed) or never existed."""


class VideoRoomError(JanusError):
    """The VideoRoom plugin refused a request (``error_code`` in its answer)."""


class VideoRoomNoSuchRoom(VideoRoomError):
    """426: the room does not exist (never created, or destroyed when the session ended)."""


class VideoRoomNoSuchFeed(VideoRoomError):
    """428: the publisher to subscribe to is not (or no longer) publishing."""


class VideoRoomUnauthorized(VideoRoomError):
    """433: wrong room secret, PIN or admin key."""


class VideoRoomPublishersFull(VideoRoomError):
    """432: the room already has its maximum number of publishers."""


class VideoRoomRoomExists(VideoRoomError):
    """427: a room with that id exists already."""


class IcePolicyError(MediaError):
    """A local ICE candidate lies outside the allowed networks: refuse to connect."""


class RecordingError(MediaError):
    """A recording could not be converted or read back."""


_CORE_ERRORS: dict[int, type[JanusError]] = {
    403: JanusUnauthorized,
    458: JanusSessionNotFound,
    459: JanusHandleNotFound,
}
_VIDEOROOM_ERRORS: dict[int, type[VideoRoomError]] = {
    426: VideoRoomNoSuchRoom,
    427: VideoRoomRoomExists,
    428: VideoRoomNoSuchFeed,
    432: VideoRoomPublishersFull,
    433: VideoRoomUnauthorized,
}


def core_error(code: int, reason: str) -> JanusError:
    """The most specific exception for a Janus core error code."""
    return _CORE_ERRORS.get(code, JanusError)(code, reason)


def videoroom_error(code: int, reason: str) -> VideoRoomError:
    """The most specific exception for a VideoRoom ``error_code``."""
    return _VIDEOROOM_ERRORS.get(code, VideoRoomError)(code, reason)
