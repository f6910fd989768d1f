"""Identity proofing: consent, documents, cases, face match, liveness, review, verdicts.

The CPU-heavy parts (face detection, embeddings, liveness) run in the process
pool through ``kyc.biometrics``; this module holds the rules and the records.
Callers wrap each public coroutine in one transaction (``app.db.transaction``).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from stdnum.cn import ric
from stdnum.exceptions import ValidationError as StdnumError

from app import audit
from app.cpu import run_cpu
from app.crypto import lookup_hash, register_encrypted, seal
from app.db import json_value
from app.errors import FieldError
from app.security import Principal, may_see_customer
from app.settings import get_settings
from app.storage import blob_store
from app.tables import Customer
from kyc import biometrics
from kyc.errors import BadDocument, CaseClosed, CaseNotFound, ConsentRequired, DocumentMissing, FaceRejected
from kyc.face import liveness
from kyc.schemas import CaseOut, Challenge, ChallengeResult, Verdict
from kyc.states import AWAITING_REVIEW, OPEN, CaseState, IllegalTransition, check_transition
from kyc.tables import FaceConsent, FaceTemplate, IdentityDocument, KycCase, KycEvidence

register_encrypted(IdentityDocument, "number_enc")
register_encrypted(FaceTemplate, "vector_enc")

CHALLENGE_WINDOW_SECONDS = 5.0
_rng = secrets.SystemRandom()


def now() -> datetime:
    return datetime.now(UTC)


# --- consent ---------------------------------------------------------------------


async def grant_consent(customer_id: int, text_version: str, ip: str) -> FaceConsent:
    current = await active_consent(customer_id)
    if current is not None:
        return current
    consent = FaceConsent(customer=customer_id, text_version=text_version, granted_at=now(), ip=ip[:64])
    await consent.save()
    await audit.record("kyc.face_consent_granted", "customer", customer_id, after={"version": text_version})
    return consent


async def active_consent(customer_id: int) -> FaceConsent | None:
    return (
        await FaceConsent.objects()
        .where((FaceConsent.customer == customer_id) & FaceConsent.withdrawn_at.is_null())
        .first()
    )


async def withdraw_consent(customer_id: int) -> int:
    """Withdrawing consent erases the customer's biometric data at once."""
    await FaceConsent.update({FaceConsent.withdrawn_at: now()}).where(
        (FaceConsent.customer == customer_id) & FaceConsent.withdrawn_at.is_null()
    )
    erased = await erase_biometrics(customer_id, reason="consent withdrawn")
    await audit.record("kyc.face_consent_withdrawn", "customer", customer_id, detail={"erased": erased})
    return erased


# --- cases -----------------------------------------------------------------------


def draw_challenges() -> list[dict[str, Any]]:
    """Two or three of the challenges (blink, turn left, turn right) in a random order,
    each with its window in seconds from the start of the frame sequence."""
    steps = liveness.draw_challenges(count=_rng.choice((2, 3)), window=CHALLENGE_WINDOW_SECONDS, rng=_rng)
    return [{"kind": s.kind.value, "start": s.start, "end": s.end} for s in steps]


async def start_case(customer_id: int) -> KycCase:
    """Open a case (or return the customer's open one): consent comes first."""
    if await active_consent(customer_id) is None:
        raise ConsentRequired("consent to face processing is needed before identity proofing")
    await expire_cases(customer_id=customer_id)
    existing = (
        await KycCase.objects()
        .where((KycCase.customer == customer_id) & KycCase.state.is_in([s.value for s in OPEN]))
        .first()
    )
    if existing is not None:
        return existing
    at = now()
    case = KycCase(
        customer=customer_id,
        state=CaseState.pending.value,
        challenges=draw_challenges(),
        created_at=at,
        updated_at=at,
        expires_at=at + timedelta(minutes=get_settings().kyc_case_ttl_minutes),
    )
    await case.save()
    await audit.record("kyc.case_started", "kyc_case", case.id, after={"state": case.state})
    return case


async def visible_case(principal: Principal, case_id: int) -> KycCase:
    """Customers see their own cases only (another's answers 404); managers and admins all."""
    case = await KycCase.objects().where(KycCase.id == case_id).first()
    if case is None or not may_see_customer(principal, case.customer):
        raise CaseNotFound("no such identity case")
    return case


async def _move(case: KycCase, target: CaseState, **changes: Any) -> None:
    before = {"state": case.state}
    case.state = check_transition(case.state, target).value
    for key, value in changes.items():
        setattr(case, key, value)
    case.updated_at = now()
    await case.save()
    await audit.record(f"kyc.case_{target.value}", "kyc_case", case.id, before=before, after={"state": case.state})


def _require_open(case: KycCase) -> None:
    if case.state not in {s.value for s in OPEN}:
        raise CaseClosed(f"the case is {case.state}")
    if case.expires_at.replace(tzinfo=case.expires_at.tzinfo or UTC) <= now():
        raise CaseClosed("the case has expired; start a new one")


# --- documents -------------------------------------------------------------------


def validate_document(kind: str, number: str, full_name: str) -> tuple[str, str]:
    """Normalise the number; a 422 names the field at fault. Returns (number, birth date)."""
    name = full_name.strip()
    if not 1 <= len(name) <= 100:
        raise BadDocument(
            "the name on the document is missing or too long", fields=[FieldError("$.full_name", "1 to 100 characters")]
        )
    if kind == "prc_resident_id":
        try:
            clean = ric.validate(number)
        except StdnumError as exc:
            raise BadDocument(
                f"not a valid resident identity number: {exc}", fields=[FieldError("$.number", str(exc))]
            ) from None
        return str(clean), ric.get_birth_date(clean).isoformat()
    if kind == "passport":
        clean = number.strip().upper()
        if not (5 <= len(clean) <= 12 and clean.isalnum()):
            raise BadDocument("not a valid passport number", fields=[FieldError("$.number", "5-12 letters or digits")])
        return clean, ""
    raise BadDocument(f"unknown document kind {kind!r}", fields=[FieldError("$.kind", "prc_resident_id or passport")])


async def submit_document(case: KycCase, kind: str, number: str, full_name: str, portrait: bytes) -> KycCase:
    """Record the document and its portrait, enrol the portrait's face, and search
    every enrolled face for the same person under another identity."""
    _require_open(case)
    clean, birth = validate_document(kind, number, full_name)
    try:
        enrolled = await run_cpu(biometrics.enrol_portrait, portrait)
    except biometrics.FaceProblem as exc:
        raise FaceRejected(exc.message, code=exc.code, fields=[FieldError("$.portrait", exc.message)]) from None
    number_hash = lookup_hash(clean, IdentityDocument, "number_enc")
    stored = blob_store().put("portrait", portrait)
    doc = IdentityDocument(
        customer=case.customer,
        kind=kind,
        number_enc=seal(clean, IdentityDocument, "number_enc"),
        number_hash=number_hash,
        full_name=full_name.strip(),
        birth_date=birth,
        portrait_blob=stored.blob_id,
        portrait_sha256=stored.sha256,
        created_at=now(),
    )
    await doc.save()
    retention = now() + timedelta(days=get_settings().kyc_retention_days)
    for engine, (version, vector) in enrolled.templates.items():
        await FaceTemplate.insert(
            FaceTemplate(
                customer=case.customer,
                document=doc.id,
                engine=engine,
                model_version=version,
                vector_enc=biometrics.seal_vector(vector),
                created_at=now(),
                expires_at=retention,
            )
        )
    case.document = doc.id
    case.threshold = biometrics.threshold()
    await KycEvidence.insert(
        KycEvidence(
            case=case.id,
            kind="portrait",
            blob_id=stored.blob_id,
            sha256=stored.sha256,
            captured_at=now(),
            detail={"document": doc.id},
        )
    )
    await audit.record(
        "kyc.document_submitted",
        "kyc_case",
        case.id,
        after={"kind": kind, "number_hash": number_hash, "portrait_sha256": stored.sha256},
    )
    duplicate, reason = await _identity_conflict(case.customer, clean, number_hash)
    if not reason:
        duplicate = await biometrics.find_duplicate(case.customer, enrolled)
        reason = "face enrolled under another identity" if duplicate is not None else ""
    if reason:
        await _move(case, CaseState.flagged, duplicate_customer=duplicate, flag_reason=reason)
    else:
        case.updated_at = now()
        await case.save()
    return case


async def _identity_conflict(customer_id: int, number: str, number_hash: str) -> tuple[int | None, str]:
    """Another customer holding this number (as a document or as their registered
    identity number) is a duplicate identity for a person to look at."""
    doc = (
        await IdentityDocument.select(IdentityDocument.customer)
        .where((IdentityDocument.number_hash == number_hash) & (IdentityDocument.customer != customer_id))
        .first()
    )
    if doc is not None:
        return int(doc["customer"]), "identity number used by another customer"
    registered = (
        await Customer.select(Customer.id)
        .where(
            (Customer.id_number_hash == lookup_hash(number, Customer, "id_number_enc")) & (Customer.id != customer_id)
        )
        .first()
    )
    if registered is not None:
        return int(registered["id"]), "identity number registered to another customer"
    own = await Customer.select(Customer.id_number_hash).where(Customer.id == customer_id).first()
    if (
        own is not None
        and own["id_number_hash"]
        and own["id_number_hash"] != lookup_hash(number, Customer, "id_number_enc")
    ):
        return None, "document number differs from the number given at sign-up"
    return None, ""


# --- frames: face match and liveness -----------------------------------------------


@dataclass(frozen=True)
class Frame:
    data: bytes
    """JPEG or PNG bytes as captured."""
    at_ms: int
    """Capture time in milliseconds from the start of the sequence."""


async def portrait_templates(case: KycCase) -> dict[str, tuple[str, Any]]:
    rows = await FaceTemplate.select(FaceTemplate.engine, FaceTemplate.model_version, FaceTemplate.vector_enc).where(
        FaceTemplate.document == case.document
    )
    return {r["engine"]: (r["model_version"], biometrics.open_vector(r["vector_enc"])) for r in rows}


async def submit_frames(case: KycCase, frames: list[Frame]) -> KycCase:
    """Judge a burst of frames: the face against the portrait (best evidence over
    the frames, never one lucky frame), the passive liveness check, and the case's
    active challenges. Moves the case forward when they pass."""
    judged = await judge(case, frames)
    return await record_judgement(case, frames, judged)


async def judge(case: KycCase, frames: list[Frame]) -> biometrics.Judged:
    """The CPU part of ``submit_frames`` (in the process pool); nothing is written."""
    _require_open(case)
    if case.document is None:
        raise DocumentMissing("submit the identity document and portrait first")
    if not frames:
        raise FaceRejected("no frames were sent", code="no_frames", fields=[FieldError("$.frames", "empty")])
    portrait = await portrait_templates(case)
    return await run_cpu(
        biometrics.judge_frames,
        [f.data for f in frames],
        [f.at_ms for f in frames],
        portrait,
        json_value(case.challenges),
    )


async def record_judgement(case: KycCase, frames: list[Frame], judged: biometrics.Judged) -> KycCase:
    """Store the frames as evidence with their distances and move the case (one transaction)."""
    _require_open(case)
    retention = now() + timedelta(days=get_settings().kyc_retention_days)
    store = blob_store()
    for frame, result in zip(frames, judged.frames, strict=True):
        stored = store.put("frame", frame.data)
        await KycEvidence.insert(
            KycEvidence(
                case=case.id,
                kind="frame",
                blob_id=stored.blob_id,
                sha256=stored.sha256,
                captured_at=now(),
                distance=result.distance,
                detail={"at_ms": frame.at_ms, "problem": result.problem, "erase_after": retention.isoformat()},
            )
        )
    distances = [r.distance for r in judged.frames if r.distance is not None]
    case.frames_matched = sum(1 for d in distances if d <= judged.threshold)
    case.best_distance = judged.evidence_distance
    case.threshold = judged.threshold
    case.challenge_results = [  # type: ignore[assignment]  # Piccolo serialises the list
        {"kind": c.kind, "passed": c.passed, "detail": c.detail} for c in judged.challenges
    ]
    case.live = judged.live
    case.liveness_reason = judged.liveness_reason
    await audit.record(
        "kyc.frames_judged",
        "kyc_case",
        case.id,
        after={
            "frames": len(frames),
            "evidence_distance": judged.evidence_distance,
            "threshold": judged.threshold,
            "live": judged.live,
            "reason": judged.liveness_reason,
        },
    )
    state = CaseState(case.state)
    if judged.matched and state == CaseState.pending:
        await _move(case, CaseState.face_matched)
        state = CaseState.face_matched
    elif (
        judged.evidence_distance is not None
        and not judged.matched
        and state == CaseState.pending
        and len(distances) >= biometrics.MIN_FRAMES
    ):
        await _move(case, CaseState.flagged, flag_reason="face does not match the identity portrait")
        return case
    if judged.matched and judged.live and state == CaseState.face_matched:
        await _move(case, CaseState.live)
        if not get_settings().kyc_require_review:
            await _verify(case, reviewer=None, reason="automatic: face matched and live")
        return case
    case.updated_at = now()
    await case.save()
    return case


# --- review and verdict -----------------------------------------------------------


async def _verify(case: KycCase, reviewer: int | None, reason: str) -> None:
    until = now() + timedelta(days=get_settings().kyc_verified_days)
    await _move(case, CaseState.verified, reviewer=reviewer, review_reason=reason, verified_until=until)


async def review_case(principal: Principal, case: KycCase, decision: str, reason: str) -> KycCase:
    """An account manager's decision on a live or flagged case."""
    if case.state not in {s.value for s in AWAITING_REVIEW}:
        check_transition(case.state, CaseState.verified if decision == "approve" else CaseState.rejected)
        if decision == "approve":  # face_matched → verified needs an attended session (attended_review)
            raise IllegalTransition(f"a case in state {case.state} awaits the liveness check, not a review")
    if decision == "approve":
        await _verify(case, reviewer=principal.account_id, reason=reason)
    else:
        await _move(case, CaseState.rejected, reviewer=principal.account_id, review_reason=reason)
    return case


async def attended_review(principal: Principal, case: KycCase, decision: str, reason: str) -> KycCase:
    """An account manager's decision at the end of a live video session they attended.

    Besides the live and flagged cases of ``review_case``, a face-matched case may be
    approved: the manager watched the customer follow the prompts, and the caller
    (video/) has checked that the passive check found no replayed photo or screen."""
    if decision == "approve" and case.state == CaseState.face_matched.value:
        await _verify(case, reviewer=principal.account_id, reason=f"attended video session: {reason}")
        return case
    return await review_case(principal, case, decision, reason)


async def verdict(customer_id: int) -> Verdict:
    """Is the customer's identity proven now? Loans and claims ask this, never the tables."""
    case = (
        await KycCase.objects()
        .where(
            (KycCase.customer == customer_id)
            & (KycCase.state == CaseState.verified.value)
            & (KycCase.verified_until > now())
        )
        .order_by(KycCase.verified_until, ascending=False)
        .first()
    )
    if case is None:
        return Verdict(customer_id=customer_id, verified=False)
    return Verdict(
        customer_id=customer_id,
        verified=True,
        case_id=case.id,
        verified_until=case.verified_until,
        best_distance=case.best_distance,
    )


# --- expiry, retention, erasure ----------------------------------------------------


async def expire_cases(customer_id: int | None = None) -> int:
    """Open cases past their deadline, and verified ones past their validity, expire."""
    at = now()
    query = KycCase.objects().where(
        (KycCase.state.is_in([s.value for s in OPEN]) & (KycCase.expires_at <= at))
        | ((KycCase.state == CaseState.verified.value) & (KycCase.verified_until <= at))
    )
    if customer_id is not None:
        query = query.where(KycCase.customer == customer_id)
    count = 0
    for case in await query:
        await _move(case, CaseState.expired)
        count += 1
    return count


async def erase_biometrics(customer_id: int, reason: str) -> int:
    """Erase templates, portraits and frames of a customer; keep the audit trail."""
    store = blob_store()
    erased = int(await FaceTemplate.count().where(FaceTemplate.customer == customer_id))
    await FaceTemplate.delete().where(FaceTemplate.customer == customer_id)
    cases = [r["id"] for r in await KycCase.select(KycCase.id).where(KycCase.customer == customer_id)]
    if cases:
        evidence = await KycEvidence.select(KycEvidence.id, KycEvidence.kind, KycEvidence.blob_id).where(
            KycEvidence.case.is_in(cases) & KycEvidence.erased_at.is_null()
        )
        for row in evidence:
            if row["blob_id"]:
                store.delete(row["kind"], row["blob_id"])
            erased += 1
        await KycEvidence.update({KycEvidence.blob_id: None, KycEvidence.erased_at: now()}).where(
            KycEvidence.case.is_in(cases) & KycEvidence.erased_at.is_null()
        )
    docs = await IdentityDocument.select(IdentityDocument.id, IdentityDocument.portrait_blob).where(
        (IdentityDocument.customer == customer_id) & IdentityDocument.erased_at.is_null()
    )
    for doc in docs:
        if doc["portrait_blob"]:
            store.delete("portrait", doc["portrait_blob"])
    await IdentityDocument.update({IdentityDocument.portrait_blob: None, IdentityDocument.erased_at: now()}).where(
        (IdentityDocument.customer == customer_id) & IdentityDocument.erased_at.is_null()
    )
    await audit.record("kyc.biometrics_erased", "customer", customer_id, detail={"items": erased, "reason": reason})
    biometrics.forget_customer(customer_id)
    return erased


async def erase_expired_biometrics() -> int:
    """Retention: templates past ``expires_at`` and frames older than the retention period."""
    at = now()
    expired = await FaceTemplate.select(FaceTemplate.customer).where(FaceTemplate.expires_at <= at).distinct()
    total = 0
    for row in expired:
        total += await erase_biometrics(int(row["customer"]), reason="retention period over")
    return total


def case_out(case: KycCase) -> CaseOut:
    return CaseOut(
        id=case.id,
        customer_id=case.customer,
        state=case.state,
        has_document=case.document is not None,
        challenges=[Challenge(kind=c["kind"], start=c["start"], end=c["end"]) for c in json_value(case.challenges)],
        challenge_results=[ChallengeResult(**c) for c in json_value(case.challenge_results)],
        best_distance=case.best_distance,
        threshold=case.threshold,
        frames_matched=int(case.frames_matched),
        live=case.live,
        liveness_reason=case.liveness_reason,
        flag_reason=case.flag_reason,
        review_reason=case.review_reason,
        created_at=case.created_at,
        expires_at=case.expires_at,
        verified_until=case.verified_until,
    )
