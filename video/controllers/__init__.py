"""HTTP surface of video/: sessions and signalling, appointments, pages."""

from pathlib import Path

from video.controllers import appointment_pages, appointments, pages, sessions

CONTROLLERS = [*sessions.CONTROLLERS, *appointments.CONTROLLERS, *appointment_pages.CONTROLLERS, *pages.CONTROLLERS]
TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
PANELS = [*pages.PANELS]
