"""HTTP surface of identity proofing: face-processing consent, cases, documents, frames, review."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Annotated, Any

from litestar import Controller, Request, delete, get, post, put
from litestar.datastructures import UploadFile
from litestar.di import NamedDependency
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromPath, JSONBody
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED

from app.db import transaction
from app.errors import FieldError, Invalid
from app.security import Principal, Role, requires_role
from app.web import Panel, home_panel
from kyc import service
from kyc.schemas import CaseOut, ConsentCreate, ConsentOut, ReviewCreate, Verdict
from kyc.states import AWAITING_REVIEW, OPEN
from kyc.tables import KycCase

MAX_PORTRAIT_BYTES = 8 * 1024 * 1024
MAX_FRAME_BYTES = 2 * 1024 * 1024
MAX_FRAMES = 60

_customer = requires_role(Role.customer)
_case_readers = requires_role(Role.customer, Role.account_manager, Role.admin)
_reviewers = requires_role(Role.account_manager)


@dataclass
class DocumentForm:
    kind: str
    number: str
    full_name: str
    portrait: UploadFile


@dataclass
class FramesForm:
    frames: list[UploadFile] = field(default_factory=list)
    timestamps: str = ""
    """Comma-separated capture times in milliseconds, one per frame (optional)."""


async def _read_upload(upload: UploadFile, limit: int, path: str) -> bytes:
    data = await upload.read(limit + 1)
    if len(data) > limit:
        raise Invalid(
            f"{path} is larger than {limit // 1024} KiB",
            code="too_large",
            fields=[FieldError(f"$.{path}", "too large")],
        )
    if not data:
        raise Invalid(f"{path} is empty", fields=[FieldError(f"$.{path}", "empty")])
    return data


def _timestamps(raw: str, count: int) -> list[int]:
    if not raw.strip():
        return [i * 200 for i in range(count)]
    try:
        values = [int(v) for v in raw.split(",")]
    except ValueError:
        raise Invalid("timestamps must be integers (ms)", fields=[FieldError("$.timestamps", "integers")]) from None
    if len(values) != count or any(b < a for a, b in itertools.pairwise(values)):
        raise Invalid("one increasing timestamp per frame is needed", fields=[FieldError("$.timestamps", "mismatch")])
    return values


class ConsentController(Controller):
    path = "/api/kyc/consent"
    tags = ["kyc"]
    guards = [_customer]

    @post("/", operation_id="grant_face_consent", status_code=HTTP_201_CREATED)
    async def grant(
        self, data: JSONBody[ConsentCreate], principal: NamedDependency[Principal], request: Request[Any, Any, Any]
    ) -> ConsentOut:
        """Record the separate consent to processing the customer's face."""
        assert principal.customer_id is not None
        async with transaction():
            consent = await service.grant_consent(
                principal.customer_id, data.text_version, request.client.host if request.client else ""
            )
        return ConsentOut(
            customer_id=consent.customer,
            text_version=consent.text_version,
            granted_at=consent.granted_at,
            withdrawn_at=consent.withdrawn_at,
        )

    @delete("/", operation_id="withdraw_face_consent", status_code=HTTP_200_OK)
    async def withdraw(self, principal: NamedDependency[Principal]) -> dict[str, int]:
        """Withdraw the consent: the customer's templates, portraits and frames are erased."""
        assert principal.customer_id is not None
        async with transaction():
            erased = await service.withdraw_consent(principal.customer_id)
        return {"erased": erased}


class CaseController(Controller):
    path = "/api/kyc/cases"
    tags = ["kyc"]

    @post("/", operation_id="start_kyc_case", guards=[_customer], status_code=HTTP_201_CREATED)
    async def start(self, principal: NamedDependency[Principal]) -> CaseOut:
        """Open an identity-proofing case (or return the open one), with its challenges."""
        assert principal.customer_id is not None
        async with transaction():
            case = await service.start_case(principal.customer_id)
        return service.case_out(case)

    @get("/{case_id:int}", operation_id="get_kyc_case", guards=[_case_readers])
    async def get_case(self, case_id: FromPath[int], principal: NamedDependency[Principal]) -> CaseOut:
        return service.case_out(await service.visible_case(principal, case_id))

    @put("/{case_id:int}/document", operation_id="submit_kyc_document", guards=[_customer])
    async def document(
        self,
        case_id: FromPath[int],
        principal: NamedDependency[Principal],
        data: Annotated[DocumentForm, Body(media_type=RequestEncodingType.MULTI_PART)],
    ) -> CaseOut:
        """The identity document's number and name, and its portrait (JPEG or PNG)."""
        portrait = await _read_upload(data.portrait, MAX_PORTRAIT_BYTES, "portrait")
        async with transaction():
            case = await service.visible_case(principal, case_id)
            case = await service.submit_document(case, data.kind, data.number, data.full_name, portrait)
        return service.case_out(case)

    @post("/{case_id:int}/frames", operation_id="submit_kyc_frames", guards=[_customer], status_code=HTTP_200_OK)
    async def frames(
        self,
        case_id: FromPath[int],
        principal: NamedDependency[Principal],
        data: Annotated[FramesForm, Body(media_type=RequestEncodingType.MULTI_PART)],
    ) -> CaseOut:
        """A burst of camera frames, judged for face match and liveness together."""
        if not 1 <= len(data.frames) <= MAX_FRAMES:
            raise Invalid(f"send 1 to {MAX_FRAMES} frames", fields=[FieldError("$.frames", "count")])
        blobs = [await _read_upload(f, MAX_FRAME_BYTES, f"frames[{i}]") for i, f in enumerate(data.frames)]
        stamps = _timestamps(data.timestamps, len(blobs))
        async with transaction():
            case = await service.visible_case(principal, case_id)
            case = await service.submit_frames(case, [service.Frame(b, t) for b, t in zip(blobs, stamps, strict=True)])
        return service.case_out(case)

    @post("/{case_id:int}/review", operation_id="review_kyc_case", guards=[_reviewers], status_code=HTTP_200_OK)
    async def review(
        self, case_id: FromPath[int], data: JSONBody[ReviewCreate], principal: NamedDependency[Principal]
    ) -> CaseOut:
        """An account manager approves or rejects a live or flagged case, with a reason."""
        async with transaction():
            case = await service.visible_case(principal, case_id)
            case = await service.review_case(principal, case, data.decision, data.reason)
        return service.case_out(case)


class VerdictController(Controller):
    path = "/api/kyc/verdict"
    tags = ["kyc"]

    @get("/", operation_id="get_my_kyc_verdict", guards=[_customer])
    async def mine(self, principal: NamedDependency[Principal]) -> Verdict:
        assert principal.customer_id is not None
        return await service.verdict(principal.customer_id)


@home_panel(Role.customer)
async def identity_panel(me: Principal) -> Panel:
    assert me.customer_id is not None
    found = await service.verdict(me.customer_id)
    if found.verified and found.verified_until is not None:
        rows = [["Identity", "verified"], ["Valid until", found.verified_until.strftime("%Y-%m-%d")]]
    else:
        open_case = (
            await KycCase.select(KycCase.state)
            .where((KycCase.customer == me.customer_id) & KycCase.state.is_in([s.value for s in OPEN]))
            .first()
        )
        rows = [["Identity", "not verified yet"], ["Open case", open_case["state"] if open_case else "none"]]
    return Panel("My identity", [], rows, links=["/identity"])


@home_panel(Role.account_manager)
async def review_queue_panel(me: Principal) -> Panel:
    rows = (
        await KycCase.select(
            KycCase.id, KycCase.customer.full_name, KycCase.state, KycCase.flag_reason, KycCase.best_distance
        )
        .where(KycCase.state.is_in([s.value for s in AWAITING_REVIEW]))
        .order_by(KycCase.updated_at)
        .limit(20)
    )
    return Panel(
        "Identity cases to review",
        ["Case", "Customer", "State", "Note", "Face distance"],
        [
            [
                str(r["id"]),
                r["customer.full_name"],
                r["state"],
                r["flag_reason"] or "—",
                "—" if r["best_distance"] is None else f"{r['best_distance']:.3f}",
            ]
            for r in rows
        ],
        empty="No case waits for review.",
    )


CONTROLLERS = [ConsentController, CaseController, VerdictController]
PANELS = [identity_panel, review_queue_panel]
