"""The KYC case state machine refuses illegal transitions."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kyc.states import OPEN, TRANSITIONS, CaseState, IllegalTransition, check_transition

ALL = list(CaseState)


@pytest.mark.parametrize(("src", "dst"), list(itertools.product(ALL, ALL)))
def test_every_pair_is_allowed_or_refused_as_the_table_says(src: CaseState, dst: CaseState) -> None:
    if dst in TRANSITIONS[src]:
        assert check_transition(src, dst) is dst
    else:
        with pytest.raises(IllegalTransition):
            check_transition(src, dst)


@given(st.lists(st.sampled_from(ALL), max_size=12))
def test_no_path_reaches_verified_without_a_face_match(path: list[CaseState]) -> None:
    """Verified always follows a face match (automatically live, attended on video, or a
    flagged case decided by a person); never straight from pending."""
    state = CaseState.pending
    seen = [state]
    for target in path:
        try:
            state = check_transition(state, target)
        except IllegalTransition:
            continue
        seen.append(state)
    if CaseState.verified in seen:
        before = seen[: seen.index(CaseState.verified)]
        assert {CaseState.face_matched, CaseState.live, CaseState.flagged} & set(before)


def test_final_states_are_final() -> None:
    for final in (CaseState.rejected, CaseState.expired):
        assert not TRANSITIONS[final]
    assert CaseState.verified not in OPEN


def test_unknown_state_is_refused() -> None:
    with pytest.raises(ValueError, match="approved"):
        check_transition("pending", "approved")
