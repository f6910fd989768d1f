"""The differential property: random rulesets on random applications decide
identically one by one (live path) and as a frame (backtest path)."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from credit.engine.features import Features
from credit.engine.rules import decide, decide_frame
from credit.engine.ruleset import Ruleset, ruleset_issues

from .strategies import features_strategy, frame_of, rulesets

EXAMPLES = int(os.environ.get("CREDIT_PROPERTY_EXAMPLES", "400"))
"""Raise it for a long soak: ``CREDIT_PROPERTY_EXAMPLES=20000 pytest ...``."""


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rulesets(), st.lists(features_strategy, min_size=1, max_size=25))
def test_single_and_vectorised_paths_agree(ruleset: Ruleset, applications: list[Features]) -> None:
    assume(not ruleset_issues(ruleset))
    frame = decide_frame(ruleset, frame_of(applications))
    assert frame.height == len(applications)
    for application, row in zip(applications, frame.iter_rows(named=True), strict=True):
        single = decide(ruleset, application)
        assert row["outcome"] == single.outcome
        assert row["limit_fen"] == single.limit_fen
        assert row["price_tier"] == single.price_tier
        assert row["reasons"] == single.reasons
