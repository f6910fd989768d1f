"""HTTP surface of kyc/: identity proofing (``cases``) and the signing ceremony (``signatures``)."""

from pathlib import Path

from kyc.controllers import cases, pages, signatures

CONTROLLERS = [*cases.CONTROLLERS, *signatures.CONTROLLERS, *pages.CONTROLLERS]
TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
PANELS = [*cases.PANELS, *signatures.PANELS]
