"""Dry runs: the decision a request would get now, with nothing reserved and no event sent.

The policy is the validator's own (`catalog.policy`), and quota and placement are the
allocator's own assessment, asked read-only: the same rules, so the same decision.
"""

from __future__ import annotations

from typing import Any

import httpx

from catalog import Catalog, CatalogItem, policy
from events.http import ProblemError


async def plan(
    catalog: Catalog,
    item: CatalogItem,
    parameters: dict[str, Any],
    *,
    roles: tuple[str, ...],
    tenant: str,
    authorization: str,
    allocator: httpx.AsyncClient,
) -> dict[str, Any]:
    """The decision a request would get. The allocator is asked with the caller's own key,
    so it answers for the caller's tenant and nobody else's."""
    approval = policy.approval_reasons(item, parameters, tenant=tenant)
    answer: dict[str, Any] = {
        "dry_run": True,
        "catalog_item": item.name,
        "policy_version": catalog.version,
        "approval_required": bool(approval),
        # The route it would wait on: why, and the stages that would decide.
        "approval": {
            "reasons": [{"field": p.field, "message": p.message} for p in approval],
            "stages": [stage.name for stage in item.approval_stages],
        }
        if approval
        else None,
        "cost": {"monthly": item.monthly_cost, "currency": "EUR"},
        "quota": {},
        "allocation": None,
    }
    problems = policy.check(item, item.name, parameters, roles=roles, tenant=tenant)
    if problems:
        reasons = [
            {"step": "validation", "code": p.code, "field": p.field, "message": p.message}
            for p in problems
        ]
        return answer | {"decision": "rejected", "reasons": reasons}
    try:
        response = await allocator.post(
            "/internal/plan",
            json={"catalog_item": item.name, "parameters": parameters},
            headers={"Authorization": authorization},
        )
        response.raise_for_status()
    except httpx.HTTPError as error:
        raise ProblemError(
            503, "Allocator unavailable for planning", type(error).__name__
        ) from error
    assessment = response.json()
    reasons = [{"step": "allocation", **reason} for reason in assessment["reasons"]]
    return answer | {
        "decision": (
            "accepted"
            if assessment["ok"]
            else "backordered"
            if assessment["backorder"]
            else "failed"
        ),
        "reasons": reasons,
        "quota": assessment["quota"],
        "allocation": (
            {"server_id": assessment["server_id"], "units": assessment["units"]}
            if assessment["ok"]
            else None
        ),
    }
