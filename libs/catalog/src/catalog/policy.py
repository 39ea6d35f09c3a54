"""Pure policy: may this requester have this item with these parameters? No I/O here.

The validator decides with it, and a dry run answers with it: the same decision both ways.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from catalog import entitlements
from catalog.entitlements import DEFAULT_TENANT
from catalog.loader import CatalogItem
from catalog.problems import ParameterProblem


def check(
    item: CatalogItem | None,
    catalog_item: str,
    parameters: Any,
    *,
    roles: Sequence[str] = ("requester",),
    operation: str = "provision",
    tenant: str = DEFAULT_TENANT,
) -> list[ParameterProblem]:
    """Every reason the request must be rejected; an empty list means it may proceed."""
    if item is None:
        return [
            ParameterProblem(
                field="catalog_item",
                message=f"unknown catalog item {catalog_item!r}",
                code="unknown_item",
            )
        ]
    if not set(roles) & set(item.allowed_roles):
        return [
            ParameterProblem(
                field=None,
                message=f"{item.name} may be requested by {', '.join(item.allowed_roles)}; "
                f"the requester has {', '.join(roles) or 'no roles'}",
                code="not_authorised",
            )
        ]
    if operation == "deprovision":
        return []  # the parameters were checked when the resource was provisioned
    problems = [
        ParameterProblem(field=p.field, message=p.message, code="invalid_parameter")
        for p in item.schema_problems(parameters)
    ]
    if problems:
        return problems
    return _policy_problems(item, parameters) + entitlements.problems(
        item.entitlements, parameters, tenant=tenant
    )


def _policy_problems(item: CatalogItem, parameters: dict[str, Any]) -> list[ParameterProblem]:
    policy = item.policy
    problems = []
    name = parameters.get("name", "")
    if name in policy.get("reserved_names", ()):
        problems.append(
            ParameterProblem(
                field="parameters.name",
                message=f"{name!r} is a reserved name",
                code="reserved_name",
            )
        )
    for prefix in policy.get("reserved_prefixes", ()):
        if name.startswith(prefix):
            problems.append(
                ParameterProblem(
                    field="parameters.name",
                    message=f"names may not start with {prefix!r}",
                    code="reserved_name",
                )
            )
    limit = parameters.get("connection_limit")
    most = policy.get("max_connection_limit")
    if limit is not None and most is not None and limit > most:
        problems.append(
            ParameterProblem(
                field="parameters.connection_limit",
                message=f"at most {most} connections are allowed for {item.name}",
                code="over_policy_limit",
            )
        )
    return problems


def approval_reasons(
    item: CatalogItem,
    parameters: dict[str, Any],
    *,
    tenant: str = DEFAULT_TENANT,
    previous: Mapping[str, Any] | None = None,
) -> list[ParameterProblem]:
    """Why this request needs an approver's decision; empty when it does not. A modify names
    the resource's `previous` parameters: what it holds already was decided then, so only a
    raise above a threshold, or a privileged value added, needs a decision now."""
    reasons = []
    for rule in item.approval.get("when", ()):
        value = parameters.get(rule["parameter"])
        before = (previous or {}).get(rule["parameter"])
        if not isinstance(value, int | float) or value <= rule["above"]:
            continue
        if isinstance(before, int | float) and before > rule["above"] and value <= before:
            continue
        reasons.append(
            ParameterProblem(
                field=f"parameters.{rule['parameter']}",
                message=rule.get("reason", f"{rule['parameter']} above {rule['above']}"),
                code="approval_required",
            )
        )
    return reasons + entitlements.privileged(
        item.entitlements, parameters, tenant=tenant, previous=previous
    )
