"""Accounts and customers: sign-up, staff creation, profile changes.

Personal numbers are sealed (AES-GCM) on the way in and found by keyed hash;
every change is audited in the same transaction.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from msgspec import UNSET

from app import audit
from app.crypto import lookup_hash, register_encrypted, seal, unseal
from app.errors import Conflict, NotFound
from app.schemas import CustomerCreate, CustomerOut, CustomerUpdate, StaffCreate
from app.security import Principal, Role, hash_password
from app.tables import Account, Customer, Notification

register_encrypted(Customer, "id_number_enc", "phone_enc", "bank_account_enc")


def mask(value: str | None, keep: int = 4) -> str | None:
    if value is None:
        return None
    return "*" * max(len(value) - keep, 0) + value[-keep:]


async def _email_taken(email: str) -> bool:
    return await Account.exists().where(Account.email == email)


async def create_customer(data: CustomerCreate) -> int:
    """Sign a customer up; returns the customer id. Call inside a transaction."""
    if await _email_taken(data.email):
        raise Conflict("an account with this email exists", code="email_taken")
    if data.id_number and await Customer.exists().where(
        Customer.id_number_hash == lookup_hash(data.id_number, Customer, "id_number_enc")
    ):
        raise Conflict("this identity number is already registered", code="id_number_taken")
    now = datetime.now(UTC)
    account = Account(
        email=data.email,
        display_name=data.full_name,
        role=Role.customer.value,
        password_hash=await hash_password(data.password),
        created_at=now,
    )
    await account.save()
    customer = Customer(account=account.id, full_name=data.full_name, created_at=now, updated_at=now)
    _set_sealed(customer, "id_number", data.id_number)
    _set_sealed(customer, "phone", data.phone)
    _set_sealed(customer, "bank_account", data.bank_account)
    await customer.save()
    await Notification.insert(
        Notification(
            account=account.id,
            subject="Welcome to Branchless",
            body=f"Dear {data.full_name}, your account is open.",
            created_at=now,
        )
    )
    await audit.record(
        "customer.created",
        "customer",
        customer.id,
        after=_state(customer),
        actor_id=account.id,
        actor_role=Role.customer.value,
    )
    return int(customer.id)


def _set_sealed(customer: Customer, field: str, value: str | None) -> None:
    column = f"{field}_enc"
    setattr(customer, column, seal(value, Customer, column))
    setattr(customer, f"{field}_hash", lookup_hash(value, Customer, column) if value else None)


def _state(customer: Customer) -> dict[str, Any]:
    """What the audit digests: the sealed values' hashes, never the numbers."""
    return {
        "full_name": customer.full_name,
        "id_number_hash": customer.id_number_hash,
        "phone_hash": customer.phone_hash,
        "bank_account_hash": customer.bank_account_hash,
    }


async def create_staff(data: StaffCreate) -> int:
    if await _email_taken(data.email):
        raise Conflict("an account with this email exists", code="email_taken")
    account = Account(
        email=data.email,
        display_name=data.display_name,
        role=data.role,
        password_hash=await hash_password(data.password),
        created_at=datetime.now(UTC),
    )
    await account.save()
    await audit.record(
        "staff.created", "account", account.id, after={"email_domain": data.email.split("@")[-1], "role": data.role}
    )
    return int(account.id)


async def visible_customer(principal: Principal, customer_id: int) -> Customer:
    """The customer, if the caller may see them. Another customer's id answers
    404, exactly like an id that does not exist, so ids cannot be probed."""
    if principal.role == Role.customer and principal.customer_id != customer_id:
        raise NotFound("no such customer")
    customer = await Customer.objects(Customer.account).where(Customer.id == customer_id).first()
    if customer is None:
        raise NotFound("no such customer")
    return customer


def customer_out(customer: Customer) -> CustomerOut:
    return CustomerOut(
        id=customer.id,
        email=customer.account.email,
        full_name=customer.full_name,
        phone=mask(unseal(customer.phone_enc, Customer, "phone_enc")),
        id_number=mask(unseal(customer.id_number_enc, Customer, "id_number_enc")),
        bank_account=mask(unseal(customer.bank_account_enc, Customer, "bank_account_enc")),
        created_at=customer.created_at,
    )


async def update_customer(principal: Principal, customer_id: int, data: CustomerUpdate) -> Customer:
    customer = await visible_customer(principal, customer_id)
    before = _state(customer)
    if data.phone is not UNSET:
        _set_sealed(customer, "phone", data.phone)
    if data.bank_account is not UNSET:
        _set_sealed(customer, "bank_account", data.bank_account)
    customer.updated_at = datetime.now(UTC)
    await customer.save()
    await audit.record("customer.updated", "customer", customer.id, before=before, after=_state(customer))
    return customer


async def list_customers(limit: int, offset: int) -> list[Customer]:
    return await Customer.objects(Customer.account).order_by(Customer.id).limit(limit).offset(offset)


async def find_customer_by_id_number(id_number: str) -> Customer | None:
    digest = lookup_hash(id_number, Customer, "id_number_enc")
    return await Customer.objects(Customer.account).where(Customer.id_number_hash == digest).first()
