"""The KYC case as an explicit state machine.

    pending ──► face_matched ──► live ──(manager approves)──► verified
       │             │             │                              │
       ├──► flagged ◄┘             │   (duplicate identity, or    ▼
       │      │ (manager decides)  │    a face that does not   expired (validity over)
       ▼      ▼                    ▼    match: a person looks)
    rejected / expired  ◄──────────┘

Only these moves exist; anything else raises ``IllegalTransition`` (409), so a
case can never skip the face match or the liveness challenge on its way to
``verified``, and a final state is final.
"""

from __future__ import annotations

from enum import StrEnum

from app.errors import Conflict


class CaseState(StrEnum):
    pending = "pending"
    face_matched = "face_matched"
    live = "live"
    flagged = "flagged"
    verified = "verified"
    rejected = "rejected"
    expired = "expired"


S = CaseState
TRANSITIONS: dict[CaseState, frozenset[CaseState]] = {
    S.pending: frozenset({S.face_matched, S.flagged, S.rejected, S.expired}),
    S.face_matched: frozenset({S.live, S.verified, S.flagged, S.rejected, S.expired}),
    # face_matched → verified only through an attended video review (kyc.service.attended_review)
    S.live: frozenset({S.verified, S.flagged, S.rejected, S.expired}),
    S.flagged: frozenset({S.verified, S.rejected, S.expired}),
    S.verified: frozenset({S.expired}),
    S.rejected: frozenset(),
    S.expired: frozenset(),
}
OPEN = frozenset({S.pending, S.face_matched, S.live, S.flagged})
AWAITING_REVIEW = frozenset({S.live, S.flagged})


class IllegalTransition(Conflict):
    code = "illegal_transition"


def check_transition(current: CaseState | str, target: CaseState | str) -> CaseState:
    """Return the target state, or raise when the move is not allowed."""
    src, dst = CaseState(current), CaseState(target)
    if dst not in TRANSITIONS[src]:
        raise IllegalTransition(f"a case in state {src.value} cannot become {dst.value}")
    return dst
