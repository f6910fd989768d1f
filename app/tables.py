"""Tables of the platform core: accounts, customers, tokens, the audit log, the outbox."""

from __future__ import annotations

from piccolo.columns import (
    Boolean,
    ForeignKey,
    Integer,
    Serial,
    Text,
    Timestamptz,
    Varchar,
)
from piccolo.table import Table


class Account(Table, tablename="account"):
    """Anyone who logs in: a customer or a member of staff, with exactly one role."""

    id = Serial(primary_key=True)

    email = Varchar(length=254, unique=True, index=True)
    display_name = Varchar(length=200)
    role = Varchar(length=32, index=True)
    password_hash = Varchar(length=255)
    is_active = Boolean(default=True)
    created_at = Timestamptz()


class Customer(Table, tablename="customer"):
    """A person the platform serves. Identity, phone and bank numbers are stored
    encrypted (``*_enc``) and found through keyed hashes (``*_hash``)."""

    id = Serial(primary_key=True)

    account = ForeignKey(references=Account, unique=True, index=True)
    full_name = Varchar(length=200)
    id_number_enc = Text(null=True, default=None)
    id_number_hash = Varchar(length=64, null=True, default=None, unique=True)
    phone_enc = Text(null=True, default=None)
    phone_hash = Varchar(length=64, null=True, default=None, index=True)
    bank_account_enc = Text(null=True, default=None)
    bank_account_hash = Varchar(length=64, null=True, default=None, index=True)
    created_at = Timestamptz()
    updated_at = Timestamptz()


class AuthToken(Table, tablename="auth_token"):
    """A login: a browser session (cookie) or an API bearer token. Only the
    SHA-256 of the secret is stored, so a database leak grants no access."""

    id = Serial(primary_key=True)

    token_hash = Varchar(length=64, unique=True, index=True)
    account = ForeignKey(references=Account, index=True)
    kind = Varchar(length=16)
    created_at = Timestamptz()
    expires_at = Timestamptz()
    revoked_at = Timestamptz(null=True, default=None)
    ip = Varchar(length=64, default="")
    user_agent = Varchar(length=300, default="")


class AuditEntry(Table, tablename="audit_entry"):
    """One link of the append-only, hash-chained audit log."""

    id = Serial(primary_key=True)

    at = Timestamptz()
    actor_id = Integer(null=True, default=None)
    actor_role = Varchar(length=32, default="")
    action = Varchar(length=100, index=True)
    entity = Varchar(length=64)
    entity_id = Varchar(length=64, default="")
    before_digest = Varchar(length=64, default="")
    after_digest = Varchar(length=64, default="")
    detail = Text(default="{}")
    ip = Varchar(length=64, default="")
    request_id = Varchar(length=64, default="")
    prev_hash = Varchar(length=64)
    entry_hash = Varchar(length=64, unique=True)


class Notification(Table, tablename="notification"):
    """Outbox of messages to customers and staff; delivered by a background job."""

    id = Serial(primary_key=True)

    account = ForeignKey(references=Account, index=True)
    channel = Varchar(length=16, default="email")
    subject = Varchar(length=200)
    body = Text()
    status = Varchar(length=16, default="pending", index=True)
    attempts = Integer(default=0)
    created_at = Timestamptz()
    sent_at = Timestamptz(null=True, default=None)
