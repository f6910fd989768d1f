"""Home-page panels of the platform core."""

from __future__ import annotations

from app import accounts, audit
from app.security import STAFF_ROLES, Principal, Role
from app.tables import Account, Customer
from app.web import Panel, home_panel


@home_panel(Role.customer)
async def my_profile(me: Principal) -> Panel:
    customer = await Customer.objects(Customer.account).where(Customer.id == me.customer_id).first()
    if customer is None:
        return Panel("My profile", [], [], empty="No customer profile.")
    out = accounts.customer_out(customer)
    rows = [
        ["Name", out.full_name],
        ["Email", out.email],
        ["Mobile", out.phone or "—"],
        ["Identity number", out.id_number or "not provided"],
        ["Bank account", out.bank_account or "not provided"],
    ]
    return Panel("My profile", [], rows)


@home_panel(Role.account_manager, Role.claims_adjuster, Role.admin)
async def recent_customers(me: Principal) -> Panel:
    rows = (
        await Customer.select(Customer.id, Customer.full_name, Customer.account.email, Customer.created_at)
        .order_by(Customer.id, ascending=False)
        .limit(10)
    )
    return Panel(
        "Recent customers",
        ["#", "Name", "Email", "Joined"],
        [[str(r["id"]), r["full_name"], r["account.email"], r["created_at"].strftime("%Y-%m-%d")] for r in rows],
    )


@home_panel(Role.admin)
async def staff(me: Principal) -> Panel:
    rows = (
        await Account.select(Account.display_name, Account.email, Account.role)
        .where(Account.role.is_in([r.value for r in STAFF_ROLES]))
        .order_by(Account.role)
    )
    return Panel(
        "Staff", ["Name", "Email", "Role"], [[r["display_name"], r["email"], r["role"].replace("_", " ")] for r in rows]
    )


@home_panel(Role.admin)
async def audit_chain(me: Principal) -> Panel:
    report = await audit.verify()
    state = "intact" if report.ok else f"BROKEN at entry {report.broken_id}: {report.reason}"
    return Panel("Audit log", [], [["Entries", str(report.entries)], ["Hash chain", state]])


PANELS = [my_profile, recent_customers, staff, audit_chain]
