"""Pure policy: is this request acceptable? No I/O here."""

from __future__ import annotations

from typing import Any

from catalog import CatalogItem
from events.contracts.validation import Problem


def check(item: CatalogItem | None, catalog_item: str, parameters: Any) -> list[Problem]:
    """Every reason the request must be rejected; an empty list means it may proceed."""
    if item is None:
        return [Problem(field="catalog_item", message=f"unknown catalog item {catalog_item!r}")]
    problems = [Problem(field=p.field, message=p.message) for p in item.schema_problems(parameters)]
    if problems:
        return problems
    return _policy_problems(item, parameters)


def _policy_problems(item: CatalogItem, parameters: dict[str, Any]) -> list[Problem]:
    policy = item.policy
    problems = []
    name = parameters.get("name", "")
    if name in policy.get("reserved_names", ()):
        problems.append(Problem(field="parameters.name", message=f"{name!r} is a reserved name"))
    for prefix in policy.get("reserved_prefixes", ()):
        if name.startswith(prefix):
            problems.append(
                Problem(field="parameters.name", message=f"names may not start with {prefix!r}")
            )
    limit = parameters.get("connection_limit")
    most = policy.get("max_connection_limit")
    if limit is not None and most is not None and limit > most:
        problems.append(
            Problem(
                field="parameters.connection_limit",
                message=f"at most {most} connections are allowed for {item.name}",
            )
        )
    return problems
