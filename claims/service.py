"""Rules of claims/: which policies a caller may see."""

from __future__ import annotations

from app.errors import NotFound
from app.money import fen_to_yuan
from app.security import Principal, Role, may_see_customer
from claims.schemas import PolicyOut
from claims.tables import Policy


def policy_out(p: Policy) -> PolicyOut:
    return PolicyOut(
        id=p.id,
        policy_number=p.policy_number,
        customer_id=p.customer,
        product=p.product,
        coverage_start=p.coverage_start,
        coverage_end=p.coverage_end,
        sum_insured=fen_to_yuan(p.sum_insured_fen),
        deductible=fen_to_yuan(p.deductible_fen),
        currency=p.currency,
        status=p.status,
    )


async def list_policies(principal: Principal, limit: int, offset: int) -> list[Policy]:
    query = Policy.objects().order_by(Policy.id).limit(limit).offset(offset)
    if principal.role == Role.customer:
        query = query.where(Policy.customer == principal.customer_id)
    return await query


async def get_policy(principal: Principal, policy_id: int) -> Policy:
    """Another customer's policy answers exactly like a missing one."""
    policy = await Policy.objects().where(Policy.id == policy_id).first()
    if policy is None or not may_see_customer(principal, policy.customer):
        raise NotFound("no such policy")
    return policy
