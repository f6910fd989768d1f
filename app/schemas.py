"""Structs that cross the HTTP boundary of the platform core."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated

import msgspec
from msgspec import UNSET, Meta, UnsetType
from stdnum.cn import ric
from stdnum.exceptions import ValidationError as StdnumError

Email = Annotated[str, Meta(min_length=3, max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")]
Password = Annotated[str, Meta(min_length=10, max_length=200)]
Name = Annotated[str, Meta(min_length=1, max_length=200)]
Phone = Annotated[str, Meta(min_length=11, max_length=20)]
BankAccount = Annotated[str, Meta(pattern=r"^\d{12,19}$")]

_MOBILE = re.compile(r"^(?:\+?86)?(1[3-9]\d{9})$")


class Base(msgspec.Struct, forbid_unknown_fields=True, rename="camel"):
    """Every boundary Struct: unknown fields are an error (a typo must not pass
    silently) and names are camelCase on the wire."""


def normalise_mobile(value: str) -> str:
    """A mainland mobile number as 11 digits; ``ValueError`` names the rule."""
    found = _MOBILE.match(value.replace(" ", "").replace("-", ""))
    if not found:
        raise ValueError("phone: must be a mainland mobile number (11 digits starting with 1)")
    return found.group(1)


def normalise_id_number(value: str) -> str:
    try:
        return str(ric.validate(value))
    except StdnumError as exc:
        raise ValueError(f"idNumber: not a valid resident identity number ({exc})") from None


class CustomerCreate(Base):
    email: Email
    password: Password
    full_name: Name
    phone: Phone
    id_number: str | None = None
    bank_account: BankAccount | None = None

    def __post_init__(self) -> None:
        self.email = self.email.strip().lower()
        self.phone = normalise_mobile(self.phone)
        if self.id_number is not None:
            self.id_number = normalise_id_number(self.id_number)


class CustomerUpdate(Base):
    phone: Phone | UnsetType = UNSET
    bank_account: BankAccount | UnsetType | None = UNSET

    def __post_init__(self) -> None:
        if isinstance(self.phone, str):
            self.phone = normalise_mobile(self.phone)


class CustomerOut(Base):
    """A customer as shown to them and to staff: numbers masked to their last digits."""

    id: int
    email: str
    full_name: str
    phone: str | None
    id_number: str | None
    bank_account: str | None
    created_at: datetime


class StaffCreate(Base):
    email: Email
    password: Password
    display_name: Name
    role: str

    def __post_init__(self) -> None:
        from app.security import STAFF_ROLES

        self.email = self.email.strip().lower()
        if self.role not in STAFF_ROLES:
            raise ValueError(f"role: must be one of {sorted(STAFF_ROLES)}")


class AccountOut(Base):
    id: int
    email: str
    display_name: str
    role: str
    customer_id: int | None = None


class TokenCreate(Base):
    email: Annotated[str, Meta(min_length=1, max_length=254)]
    password: Annotated[str, Meta(min_length=1, max_length=200)]


class TokenOut(Base):
    token: str
    expires_at: datetime
    account: AccountOut
    token_type: str = "Bearer"  # noqa: S105 (a scheme name, not a secret)


class AuditEntryOut(Base):
    id: int
    at: datetime
    actor_id: int | None
    actor_role: str
    action: str
    entity: str
    entity_id: str
    before_digest: str
    after_digest: str
    request_id: str
    entry_hash: str


class AuditVerifyOut(Base):
    ok: bool
    entries: int
    broken_id: int | None
    reason: str


class Health(Base):
    status: str
    checks: dict[str, str] = {}
