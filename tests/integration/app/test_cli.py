"""The ``branchless`` command line: settings errors, staff creation, seeding."""

from __future__ import annotations

import secrets
import subprocess

from app.tables import Account, AuditEntry

CLI = ".venv/bin/branchless"


def run(args: list[str], env: dict[str, str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CLI, *args], env=env, input=stdin, capture_output=True, text=True, check=False, timeout=120)


def test_bad_setting_stops_with_the_variable_named(cli_env: dict[str, str]) -> None:
    r = run(["migrate"], {**cli_env, "BRANCHLESS_PORT": "eighty"})
    assert r.returncode != 0
    assert "BRANCHLESS_PORT" in r.stderr
    r = run(["serve"], {**cli_env, "DATABASE_URL": "mysql://nope"})
    assert r.returncode != 0
    assert "DATABASE_URL" in r.stderr


async def test_create_staff(cli_env: dict[str, str]) -> None:
    email = f"ops-{secrets.token_hex(4)}@branchless.cn"
    r = run(
        [
            "create-staff",
            "--email",
            email,
            "--name",
            "Ops",
            "--role",
            "claims_adjuster",
            "--password",
            "a long enough password",
        ],
        cli_env,
    )
    assert r.returncode == 0, r.stderr
    account = await Account.objects().where(Account.email == email).first()
    assert account is not None
    assert account.role == "claims_adjuster"
    assert account.password_hash.startswith("$argon2id$")
    assert await AuditEntry.exists().where(
        (AuditEntry.action == "staff.created") & (AuditEntry.entity_id == str(account.id))
    )
    again = run(
        ["create-staff", "--email", email, "--name", "Ops", "--role", "admin", "--password", "a long enough password"],
        cli_env,
    )
    assert again.returncode != 0
    assert "exists" in again.stderr


def test_create_staff_refuses_a_weak_password(cli_env: dict[str, str]) -> None:
    r = run(
        ["create-staff", "--email", "x@branchless.cn", "--name", "X", "--role", "admin", "--password", "short"], cli_env
    )
    assert r.returncode != 0
    assert "password" in r.stderr


async def test_seed_is_repeatable(cli_env: dict[str, str]) -> None:
    from claims.tables import Policy
    from credit.tables import TaxFiling

    first = run(["seed"], cli_env)
    assert first.returncode == 0, first.stderr
    counts = (await Account.count(), await Policy.count(), await TaxFiling.count())
    second = run(["seed"], cli_env)
    assert second.returncode == 0, second.stderr
    assert (await Account.count(), await Policy.count(), await TaxFiling.count()) == counts
    for role in ("customer", "admin", "account_manager", "risk_officer", "claims_adjuster"):
        assert role in first.stdout
    assert await Account.exists().where(Account.email == "customer@demo.branchless.cn")


def test_seed_refuses_production(cli_env: dict[str, str]) -> None:
    env = {
        **cli_env,
        "BRANCHLESS_ENVIRONMENT": "production",
        "BRANCHLESS_SECRET_KEY": "x" * 32,
        "BRANCHLESS_ENCRYPTION_KEYS": "k1:" + "A" * 43 + "=",
        "BRANCHLESS_BLIND_INDEX_KEY": "A" * 43 + "=",
    }
    r = run(["seed"], env)
    assert r.returncode != 0
    assert "production" in r.stderr
