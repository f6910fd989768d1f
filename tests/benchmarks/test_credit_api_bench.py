"""Decision API throughput: applications decided through HTTP with the decision persisted.

A real server process (``branchless serve``, one uvicorn worker) on the test
database, and a load generator in this process: an httpx async client on
loopback keeping ``CONCURRENCY`` requests in flight, each a customer's
``POST /api/credit/applications`` under a signed consent, decided by the
published ruleset in the request and written with its snapshot, its
application row and its audit entry in one transaction. Every customer applies
once before the measurement (the warm-up stores their tax filings, as a first
application does); the measured applications then find the authority's record
unchanged, which is the steady state of a returning customer.

Run on PostgreSQL for the target (``BRANCHLESS_TEST_DB=postgres make bench``).
Prints decisions per second and latency percentiles. ``BRANCHLESS_CREDIT_API_BENCH_SECONDS``
(default 20), ``..._CONCURRENCY`` (16) and ``..._CUSTOMERS`` (200) size it;
``BRANCHLESS_BENCH_ENFORCE=1`` fails on a missed target (>= 1,500 decisions/s,
p99 <= 25 ms), off by default: the machine's 2 cores are shared with the load
generator, PostgreSQL and whoever else is working.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import statistics
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

SECONDS = float(os.environ.get("BRANCHLESS_CREDIT_API_BENCH_SECONDS", "20"))
CONCURRENCY = int(os.environ.get("BRANCHLESS_CREDIT_API_BENCH_CONCURRENCY", "16"))
CUSTOMERS = int(os.environ.get("BRANCHLESS_CREDIT_API_BENCH_CUSTOMERS", "200"))
WORKERS = int(os.environ.get("BRANCHLESS_CREDIT_API_BENCH_WORKERS", "1"))
"""1: ``branchless serve`` as deployed today; more: ``uvicorn --workers N`` on the same app factory."""
ENFORCE = os.environ.get("BRANCHLESS_BENCH_ENFORCE") == "1"
TARGET_RATE, TARGET_P99_MS = 1500.0, 25.0


def _cpu_seconds(pid: int) -> float:
    """User and system CPU of a process and its children (Linux ``/proc``)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(entry) == pid or int(fields[1]) == pid:  # fields[1] is the parent's pid
            total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _customers(n: int) -> list[tuple[dict[str, str], int]]:
    """``n`` customers, each with a taxpayer and a tax-data consent in force.

    The consent's document is stored completed directly (no PDF, no ceremony:
    both are measured elsewhere), which is the state the ceremony leaves it in.
    """
    from app.db import transaction
    from app.errors import Conflict
    from credit import rulesets
    from credit.tables import TaxConsent, Taxpayer
    from kyc.signatures import COMPLETED
    from kyc.tables import SignedDocument
    from tests.helpers import bearer, make_customer, make_taxpayer

    async with transaction():
        await rulesets.seed_published_ruleset()
    people = []
    today = datetime.now(UTC).date()
    for _ in range(n):
        for _attempt in range(5):
            try:
                person = await make_customer("压测")
                break
            except Conflict:  # the helper's random identity numbers collide now and then at this scale
                continue
        assert person.customer_id is not None
        taxpayer_pk = await make_taxpayer(person.customer_id)
        taxpayer = await Taxpayer.select(Taxpayer.taxpayer_id).where(Taxpayer.id == taxpayer_pk).first()
        assert taxpayer is not None
        now = datetime.now(UTC)
        doc = SignedDocument(
            customer=person.customer_id,
            kind="tax_consent",
            title="Tax data consent (benchmark)",
            state=COMPLETED,
            original_sha256="0" * 64,
            current_blob="",
            current_sha256="0" * 64,
            signers=[],
            created_at=now,
            updated_at=now,
            completed_at=now,
        )
        await doc.save()
        await TaxConsent.insert(
            TaxConsent(
                customer=person.customer_id,
                taxpayer_id=taxpayer["taxpayer_id"],
                scope=["tax records"],
                valid_from=today,
                expires_on=today + timedelta(days=365),
                signed_document_id=doc.id,
                state="active",
                created_at=now,
            )
        )
        people.append((await bearer(person.account_id), taxpayer_pk))
    return people


@pytest.fixture(scope="module")
def server(cli_env: dict[str, str]) -> Iterator[tuple[str, int]]:
    port = _free_port()
    command = [".venv/bin/branchless", "serve", "--host", "127.0.0.1", "--port", str(port)]
    if WORKERS > 1:
        command = [".venv/bin/uvicorn", "--factory", "app.factory:app_from_env", "--host", "127.0.0.1"]
        command += ["--port", str(port), "--workers", str(WORKERS), "--no-access-log", "--log-level", "warning"]
    proc = subprocess.Popen(
        command,
        env={**cli_env, "BRANCHLESS_LOG_LEVEL": "warning"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"{base}/ready", timeout=1):
                break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError("the server did not start") from None
            time.sleep(0.2)
    yield base, proc.pid
    proc.terminate()
    proc.wait(timeout=30)


async def _load(base: str, people: list[tuple[dict[str, str], int]], seconds: float) -> tuple[list[float], int, int]:
    """Keep ``CONCURRENCY`` applications in flight for ``seconds``; latencies in ms."""
    import httpx

    latencies: list[float] = []
    failures = 0
    outcomes: dict[str, int] = {}
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=10.0) as client:
        stop = time.perf_counter() + seconds

        async def worker(k: int) -> None:
            nonlocal failures
            i = k
            while time.perf_counter() < stop:
                headers, taxpayer_pk = people[i % len(people)]
                i += CONCURRENCY
                body = {
                    "taxpayerPk": taxpayer_pk,
                    "amount": f"{100000 + secrets.randbelow(900) * 1000}.00",
                    "termMonths": 12,
                    "purpose": "working_capital",
                }
                started = time.perf_counter()
                r = await client.post("/api/credit/applications", json=body, headers=headers)
                latencies.append((time.perf_counter() - started) * 1000)
                if r.status_code != 201:
                    failures += 1
                else:
                    outcome = r.json()["decision"]["outcome"]
                    outcomes[outcome] = outcomes.get(outcome, 0) + 1

        await asyncio.gather(*(worker(k) for k in range(CONCURRENCY)))
    return latencies, failures, sum(outcomes.values())


def _percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def test_decisions_per_second_through_http(server: tuple[str, int], backend: str) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:  # the database helpers need a loop of their own
        people = pool.submit(asyncio.run, _customers(CUSTOMERS)).result()

    # warm-up: every customer's first application stores their filings
    base, pid = server
    latencies, failures, _ = asyncio.run(_load(base, people, max(3.0, CUSTOMERS / 100)))
    assert failures == 0, f"{failures} warm-up applications failed"

    started, server_cpu, client_cpu = time.perf_counter(), _cpu_seconds(pid), time.process_time()
    latencies, failures, decided = asyncio.run(_load(base, people, SECONDS))
    elapsed = time.perf_counter() - started
    server_ms = (_cpu_seconds(pid) - server_cpu) / decided * 1000
    client_ms = (time.process_time() - client_cpu) / decided * 1000
    assert failures == 0, f"{failures} applications failed"
    rate = decided / elapsed
    p50, p99 = statistics.median(latencies), _percentile(latencies, 99)
    print(
        f"\ncredit API on {backend}: {decided} decisions in {elapsed:.1f} s = {rate:,.0f} decisions/s, "
        f"latency p50 {p50:.1f} ms, p90 {_percentile(latencies, 90):.1f} ms, p99 {p99:.1f} ms, "
        f"max {max(latencies):.1f} ms ({WORKERS} server process(es), {CONCURRENCY} in flight, {len(people)} customers, "
        f"target >= {TARGET_RATE:,.0f}/s and p99 <= {TARGET_P99_MS:.0f} ms); CPU per decision: "
        f"server {server_ms:.2f} ms, load generator {client_ms:.2f} ms"
    )
    if ENFORCE:
        assert rate >= TARGET_RATE
        assert p99 <= TARGET_P99_MS
