"""Video sessions without media: Janus is "configured" at a closed loopback port.

Nothing here starts Janus (media tests run in a private network namespace elsewhere,
``tests/integration/video``). Every test gets explicit Janus settings - a URL where
nothing listens and 16+ character secrets - so the hub never looks for the development
Janus's secrets, and accepting a customer meets a media server that is down.
"""

from __future__ import annotations

import contextlib
import secrets
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.helpers import Person, make_customer, make_staff

API_SECRET = "test-janus-api-secret-0123456789"
ROOM_ADMIN_KEY = "test-janus-room-admin-key-0123456789"


def closed_port() -> int:
    """A loopback port nobody listens on (bound once to pick it, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


@pytest.fixture
def settings_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., None]]:
    """``settings_env(BRANCHLESS_X="...")``: change settings for this test only."""
    from app.settings import get_settings

    def apply(**env: str) -> None:
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        get_settings.cache_clear()

    yield apply
    get_settings.cache_clear()  # runs before monkeypatch restores the environment; re-read lazily after


@pytest.fixture(autouse=True)
def janus_down(settings_env: Callable[..., None]) -> str:
    url = f"http://127.0.0.1:{closed_port()}/janus"
    settings_env(
        BRANCHLESS_JANUS_URL=url,
        BRANCHLESS_JANUS_API_SECRET=API_SECRET,
        BRANCHLESS_JANUS_ROOM_ADMIN_KEY=ROOM_ADMIN_KEY,
    )
    return url


@pytest.fixture(autouse=True)
async def empty_queue() -> None:
    """The queue and the capacity span every live session in the database: start each test
    with none (sessions other tests left waiting are cancelled)."""
    from video.tables import VideoSession

    await VideoSession.update({VideoSession.state: "cancelled", VideoSession.end_reason: "timeout"}).where(
        VideoSession.state.is_in(["waiting", "active"])
    )


async def open_case(person: Person, *, document: bool = True, state: str | None = None) -> int:
    """The customer's face consent and open KYC case, with an identity document written
    directly (no face enrolment: these tests never analyse video)."""
    from app.db import transaction
    from kyc import service as kyc_service
    from kyc.tables import IdentityDocument, KycCase

    assert person.customer_id is not None
    async with transaction():
        await kyc_service.grant_consent(person.customer_id, "face-2026-01", "127.0.0.1")
        case = await kyc_service.start_case(person.customer_id)
    if document:
        doc = IdentityDocument(
            customer=person.customer_id,
            kind="prc_resident_id",
            number_enc="",
            number_hash=secrets.token_hex(32),
            full_name="测试客户",
            created_at=datetime.now(UTC),
        )
        await doc.save()
        await KycCase.update({KycCase.document: doc.id}).where(KycCase.id == case.id)
    if state is not None:
        await KycCase.update({KycCase.state: state}).where(KycCase.id == case.id)
    return int(case.id)


async def customer_ready(name: str = "测试客户") -> Person:
    """A customer who may join the queue: consent given, case open, document submitted."""
    person = await make_customer(name)
    await open_case(person)
    return person


def principal(person: Person, role: str) -> Any:
    from app.security import Principal, Role, TokenKind

    return Principal(person.account_id, Role(role), person.email, "x", person.customer_id, 0, TokenKind.api)


async def active_session(customer: Person, manager: Person, *, case_state: str | None = None, **values: Any) -> int:
    """A session put straight into the database as accepted by ``manager`` (no room: no Janus)."""
    from kyc.tables import KycCase
    from video.tables import VideoSession

    case = (
        await KycCase.objects()
        .where(KycCase.customer == customer.customer_id)
        .order_by(KycCase.id, ascending=False)
        .first()
    )
    assert case is not None
    if case_state is not None:
        await KycCase.update({KycCase.state: case_state}).where(KycCase.id == case.id)
    at = datetime.now(UTC)
    session = VideoSession(
        case=case.id,
        customer=customer.customer_id,
        manager=manager.account_id,
        purpose="loan",
        state="active",
        recording_consent_at=at - timedelta(minutes=5),
        queued_at=at - timedelta(minutes=5),
        accepted_at=at - timedelta(minutes=2),
        updated_at=at,
        **values,
    )
    await session.save()
    return int(session.id)


async def audit_count(action: str, entity_id: int) -> int:
    from app.tables import AuditEntry

    return int(await AuditEntry.count().where((AuditEntry.action == action) & (AuditEntry.entity_id == str(entity_id))))


@pytest.fixture
async def manager() -> Person:
    return await make_staff("account_manager")


@pytest.fixture
async def alice() -> Person:
    return await customer_ready("张伟")


@pytest.fixture
async def bob() -> Person:
    return await customer_ready("欧阳娜娜")


@contextlib.asynccontextmanager
async def serve(app: Any) -> AsyncIterator[Any]:
    """An httpx client on ``app`` with its lifespan (for an app built with other settings)."""
    import httpx

    from tests.conftest import running

    async with running(app):
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as c:
            yield c
