"""JSON API of the platform core: tokens, customers, staff, audit."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from litestar import Controller, Request, delete, get, patch, post
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, JSONBody, QueryParameter
from litestar.status_codes import HTTP_201_CREATED, HTTP_204_NO_CONTENT

from app import accounts, audit
from app.db import transaction
from app.errors import Unauthorized
from app.jobs import JobRunner
from app.notifications import JOB as NOTIFY_JOB
from app.notifications import pending as pending_notifications
from app.schemas import (
    AccountOut,
    AuditEntryOut,
    AuditVerifyOut,
    CustomerCreate,
    CustomerOut,
    CustomerUpdate,
    StaffCreate,
    TokenCreate,
    TokenOut,
)
from app.security import (
    Principal,
    Role,
    TokenKind,
    check_login,
    issue_token,
    provide_principal,
    requires_admin,
    requires_login,
    requires_role,
    revoke_token,
)
from app.settings import get_settings
from app.tables import AuditEntry, Customer

Limit = Annotated[int, QueryParameter(ge=1, le=500)]
Offset = Annotated[int, QueryParameter(ge=0)]


def account_out(principal: NamedDependency[Principal]) -> AccountOut:
    return AccountOut(
        id=principal.account_id,
        email=principal.email,
        display_name=principal.display_name,
        role=principal.role.value,
        customer_id=principal.customer_id,
    )


async def _notify_pending(jobs: NamedDependency[JobRunner]) -> None:
    for payload in await pending_notifications():
        await jobs.enqueue(NOTIFY_JOB, payload)


class AuthController(Controller):
    path = "/api/auth"
    tags = ["auth"]

    @post("/tokens", operation_id="create_token", status_code=HTTP_201_CREATED)
    async def create_token(self, data: JSONBody[TokenCreate], request: Request[Any, Any, Any]) -> TokenOut:
        """Exchange email and password for a bearer token."""
        account = await check_login(data.email, data.password)
        if account is None:
            raise Unauthorized("email or password is wrong", code="bad_credentials")
        ttl = timedelta(minutes=get_settings().api_token_ttl_minutes)
        async with transaction():
            token, expires = await issue_token(
                account.id,
                TokenKind.api,
                ttl,
                ip=request.client.host if request.client else "",
                user_agent=request.headers.get("user-agent", ""),
            )
            await audit.record("auth.token_issued", "account", account.id, actor_id=account.id, actor_role=account.role)
        customer = await Customer.select(Customer.id).where(Customer.account == account.id).first()
        return TokenOut(
            token=token,
            expires_at=expires,
            account=AccountOut(
                id=account.id,
                email=account.email,
                display_name=account.display_name,
                role=account.role,
                customer_id=customer["id"] if customer else None,
            ),
        )

    @delete("/tokens/current", operation_id="revoke_token", guards=[requires_login], status_code=HTTP_204_NO_CONTENT)
    async def revoke_current(self, principal: NamedDependency[Principal]) -> None:
        """Log out: the token stops working at once."""
        async with transaction():
            await revoke_token(principal.token_id)
            await audit.record("auth.logout", "account", principal.account_id)

    @get("/me", operation_id="get_me", guards=[requires_login])
    async def me(self, principal: NamedDependency[Principal]) -> AccountOut:
        return account_out(principal)


class CustomerController(Controller):
    path = "/api/customers"
    tags = ["customers"]

    @post("/", operation_id="create_customer", status_code=HTTP_201_CREATED)
    async def create_customer(self, data: JSONBody[CustomerCreate], jobs: NamedDependency[JobRunner]) -> CustomerOut:
        """Sign up as a customer (no login needed)."""
        async with transaction():
            customer_id = await accounts.create_customer(data)
        await _notify_pending(jobs)
        customer = await Customer.objects(Customer.account).where(Customer.id == customer_id).first()
        assert customer is not None
        return accounts.customer_out(customer)

    @get(
        "/",
        operation_id="list_customers",
        guards=[requires_role(Role.account_manager, Role.claims_adjuster, Role.admin)],
    )
    async def list_customers(self, limit: Limit = 50, offset: Offset = 0) -> list[CustomerOut]:
        customers = await accounts.list_customers(limit, offset)
        await audit.record("customer.listed", "customer", "", detail={"ids": [c.id for c in customers]})
        return [accounts.customer_out(c) for c in customers]

    @get(
        "/{customer_id:int}",
        operation_id="get_customer",
        guards=[requires_role(Role.customer, Role.account_manager, Role.claims_adjuster, Role.admin)],
    )
    async def get_customer(self, customer_id: FromPath[int], principal: NamedDependency[Principal]) -> CustomerOut:
        """Staff reading a customer's record is itself audited (who looked at whom)."""
        customer = await accounts.visible_customer(principal, customer_id)
        if principal.is_staff:
            await audit.record("customer.viewed", "customer", customer_id)
        return accounts.customer_out(customer)

    @patch("/{customer_id:int}", operation_id="update_customer", guards=[requires_role(Role.customer)])
    async def update_customer(
        self, customer_id: FromPath[int], data: JSONBody[CustomerUpdate], principal: NamedDependency[Principal]
    ) -> CustomerOut:
        """A customer changes their own phone or bank account."""
        async with transaction():
            customer = await accounts.update_customer(principal, customer_id, data)
        return accounts.customer_out(customer)


class StaffController(Controller):
    path = "/api/staff"
    tags = ["staff"]
    guards = [requires_admin]

    @post("/", operation_id="create_staff", status_code=HTTP_201_CREATED)
    async def create_staff(self, data: JSONBody[StaffCreate]) -> AccountOut:
        async with transaction():
            account_id = await accounts.create_staff(data)
        return AccountOut(id=account_id, email=data.email, display_name=data.display_name, role=data.role)


class AuditController(Controller):
    path = "/api/audit"
    tags = ["audit"]
    guards = [requires_admin]

    @get("/entries", operation_id="list_audit_entries")
    async def list_entries(
        self,
        limit: Limit = 100,
        before_id: Annotated[int | None, QueryParameter(ge=1)] = None,
    ) -> list[AuditEntryOut]:
        query = AuditEntry.select().order_by(AuditEntry.id, ascending=False).limit(limit)
        if before_id is not None:
            query = query.where(AuditEntry.id < before_id)
        return [AuditEntryOut(**{k: row[k] for k in AuditEntryOut.__struct_fields__}) for row in await query]

    @get("/verify", operation_id="verify_audit_chain")
    async def verify_chain(self) -> AuditVerifyOut:
        report = await audit.verify()
        return AuditVerifyOut(ok=report.ok, entries=report.entries, broken_id=report.broken_id, reason=report.reason)


API_CONTROLLERS = [AuthController, CustomerController, StaffController, AuditController]
API_DEPENDENCIES = {"principal": Provide(provide_principal)}
