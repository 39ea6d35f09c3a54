"""Whether a request fits: name, quota and capacity. The allocator decides with it under
locks; a dry run asks it without, and so gets the same answer the request would."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from allocator import repository, rules
from allocator.rules import Quota
from catalog import CatalogItem
from events.contracts.common import Problem


@dataclass(frozen=True)
class Assessment:
    needs: dict[str, int]
    ledger: dict[str, Quota]
    server_id: str | None
    problems: list[Problem] = field(default_factory=list)
    # role -> (pool, unit)
    units: dict[str, tuple[str, str]] = field(default_factory=dict)

    def may_wait(self, allocation_spec: dict[str, Any]) -> bool:
        """Out of stock (not of quota), for an item that allows a backorder."""
        return bool(
            allocation_spec.get("backorder")
            and self.problems
            and self.problems[0].code == "out_of_stock"
            and not rules.problems(self.needs, self.ledger)
        )

    def public(self, allocation_spec: dict[str, Any]) -> dict[str, Any]:
        return {
            "ok": not self.problems,
            "backorder": self.may_wait(allocation_spec),
            "reasons": [p.model_dump() for p in self.problems],
            "server_id": self.server_id,
            "units": {role: unit for role, (_, unit) in self.units.items()},
            "quota": {
                dim: {
                    "limit": quota.limit,
                    "warning": quota.warning,
                    "in_use_before": quota.in_use,
                    "in_use_after": quota.in_use + self.needs.get(dim, 0),
                }
                for dim, quota in self.ledger.items()
            },
        }


async def assess(
    session: AsyncSession,
    item: CatalogItem,
    *,
    tenant: str,
    parameters: dict[str, Any],
    lock: bool,
) -> Assessment:
    name = str(parameters.get("name", ""))
    needs = item.quota_needs(parameters)
    if await repository.name_in_use(session, catalog_item=item.name, name=name):
        problem = Problem(
            code="name_taken",
            field="parameters.name",
            message=f"{item.name} {name!r} already exists",
        )
        return Assessment(needs, {}, None, [problem])
    ledger = await repository.lock_ledger(session, tenant=tenant, dimensions=needs, lock=lock)
    if problems := rules.problems(needs, ledger):
        return Assessment(needs, ledger, None, problems)
    units = {}
    for role, pool in item.unit_needs(parameters).items():
        unit = await repository.free_unit(session, pool=pool, tenant=tenant, lock=lock)
        if unit is None:
            problem = Problem(code="out_of_stock", message=f"no {role} left in {pool}")
            return Assessment(needs, ledger, None, [problem])
        units[role] = (pool, unit)
    if "capacity_pool" not in item.allocation:
        # Nothing to place: the item's target system takes it.
        return Assessment(needs, ledger, item.allocation.get("target", item.name), units=units)
    server_id = await repository.best_server(session, catalog_item=item.name, lock=lock)
    if server_id is None:
        problem = Problem(code="out_of_stock", message=f"no server has room for {item.name}")
        return Assessment(needs, ledger, None, [problem])
    return Assessment(needs, ledger, server_id, units=units)
