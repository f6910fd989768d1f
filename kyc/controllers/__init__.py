"""HTTP surface of kyc/: identity proofing (``cases``) and the signing ceremony (``signatures``)."""

from kyc.controllers import cases, signatures

CONTROLLERS = [*cases.CONTROLLERS, *signatures.CONTROLLERS]
PANELS = [*cases.PANELS, *signatures.PANELS]
