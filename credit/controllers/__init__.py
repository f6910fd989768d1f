"""HTTP surface of credit/: tax records and consent (``taxes``), applications and
decisions (``applications``), rulesets and risk analytics (``rulesets``), and the
risk officers' pages (``pages``, templates in ``credit/templates``)."""

from pathlib import Path

from credit.controllers import applications, pages, rulesets, taxes

CONTROLLERS = [*taxes.CONTROLLERS, *applications.CONTROLLERS, *rulesets.CONTROLLERS, *pages.CONTROLLERS]
PANELS = [*taxes.PANELS, *applications.PANELS, *rulesets.PANELS]
TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
