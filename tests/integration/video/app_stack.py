"""The whole platform inside the private namespace: Janus, a migrated database, seeded people, the app.

Used by the session scenarios (synthetic participants and real browsers) and the video
benchmark. Everything listens on the namespace's own loopback (the app and Janus's API) or on
its veth pair (media); the database is a SQLite file in the work folder (the PostgreSQL server
of the machine lives outside the namespace and is tested by the other suites).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import time
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from tests.integration.video.media_peers import FIXTURES
from tests.integration.video.media_scenario import PEER_NETWORKS, janus_settings
from video.media.janus_process import JanusProcess

REPO = Path(__file__).resolve().parents[3]
BRANCHLESS = str(REPO / ".venv" / "bin" / "branchless")
PORTRAIT = FIXTURES / "images" / "lp_d13_person_portrait.jpg"
APP_PORT = 8000


@dataclass
class Login:
    account_id: int
    customer_id: int | None
    email: str
    cookie: str
    """The page session token (what a browser holds in ``branchless_session``)."""
    bearer: dict[str, str]


@dataclass
class Stack:
    base: str
    work: Path
    janus: JanusProcess
    server: subprocess.Popen[bytes]
    env: dict[str, str]
    customers: list[Login] = field(default_factory=list)
    managers: list[Login] = field(default_factory=list)


def app_env(work: Path, janus: JanusProcess, **extra: str) -> dict[str, str]:
    settings = janus.settings
    return {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{work / 'app.sqlite3'}",
        "BRANCHLESS_ENVIRONMENT": "test",
        "BRANCHLESS_VAR_DIR": str(work / "var"),
        "BRANCHLESS_MODELS_DIR": str(REPO / "var" / "models"),
        "BRANCHLESS_JANUS_URL": janus.base_url,
        "BRANCHLESS_JANUS_API_SECRET": settings.api_secret,
        "BRANCHLESS_JANUS_ROOM_ADMIN_KEY": settings.room_admin_key,
        "BRANCHLESS_JANUS_RECORDINGS_ROOT": settings.recordings_root,
        "BRANCHLESS_VIDEO_ALLOWED_NETWORKS": ",".join(PEER_NETWORKS),
        "BRANCHLESS_LOG_LEVEL": "warning",
        "BRANCHLESS_CPU_WORKERS": "2",
        **extra,
    }


async def _login(account_id: int, customer_id: int | None, email: str) -> Login:
    from app.db import transaction
    from app.security import TokenKind, issue_token

    async with transaction():
        cookie, _ = await issue_token(account_id, TokenKind.session, timedelta(hours=2))
        api, _ = await issue_token(account_id, TokenKind.api, timedelta(hours=2))
    return Login(account_id, customer_id, email, cookie, {"authorization": f"Bearer {api}"})


async def seed(customers: int, managers: int, portrait: Path = PORTRAIT) -> tuple[list[Login], list[Login]]:
    """Customers with face consent and a KYC case holding their identity card and portrait; managers."""
    from app import db
    from app.db import transaction
    from kyc import service as kyc_service
    from tests.helpers import make_customer, make_staff

    await db.start_pool()
    try:
        people, staff = [], []
        image = portrait.read_bytes()
        for i in range(customers):
            person = await make_customer(f"视频客户{i}")
            assert person.customer_id is not None
            async with transaction():
                await kyc_service.grant_consent(person.customer_id, "face-2026-01", "192.0.2.2")
                case = await kyc_service.start_case(person.customer_id)
            async with transaction():
                case = await kyc_service.submit_document(
                    case, "prc_resident_id", person.id_number, f"视频客户{i}", image
                )
            people.append(await _login(person.account_id, person.customer_id, person.email))
        for _ in range(managers):
            manager = await make_staff("account_manager")
            staff.append(await _login(manager.account_id, None, manager.email))
        return people, staff
    finally:
        await db.close_pool()


def _wait_ready(base: str, server: subprocess.Popen[bytes], timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(f"{base}/ready", timeout=2):
                return
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the app did not become ready") from None
            time.sleep(0.3)


@contextlib.asynccontextmanager
async def platform(work: Path, *, customers: int = 1, managers: int = 1, **extra: str) -> AsyncIterator[Stack]:
    """Janus + migrated database + seeded people + ``branchless serve`` on 127.0.0.1:8000."""
    work.mkdir(parents=True, exist_ok=True)
    async with JanusProcess(janus_settings(work), work / "janus") as janus:
        env = app_env(work, janus, **extra)
        os.environ.update(env)  # the seeding below runs in this process, on the same database
        subprocess.run([BRANCHLESS, "migrate"], env=env, check=True, cwd=REPO, capture_output=True)
        people, staff = await seed(customers, managers)
        log = (work / "server.log").open("wb")
        server = subprocess.Popen(
            [BRANCHLESS, "serve", "--host", "127.0.0.1", "--port", str(APP_PORT)],
            env=env,
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        base = f"http://127.0.0.1:{APP_PORT}"
        try:
            await asyncio.to_thread(_wait_ready, base, server)
            yield Stack(base, work, janus, server, env, people, staff)
        finally:
            server.terminate()
            try:
                await asyncio.to_thread(server.wait, 30)
            except subprocess.TimeoutExpired:
                server.kill()
            log.close()


def server_log(stack: Stack, lines: int = 60) -> str:
    text = (stack.work / "server.log").read_text(errors="replace").splitlines()
    return "\n".join(text[-lines:])
