"""Backorders: requests that wait for stock are allocated, oldest first, when it arrives."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from allocator import repository
from catalog import Catalog
from events import ServiceRuntime
from events.contracts.allocation import ResourceAllocated
from events.contracts.validation import RequestValidated


async def fill(runtime: ServiceRuntime, catalog: Catalog, session: AsyncSession) -> None:
    for allocation in await repository.backorders(session):
        item = catalog.get(allocation.catalog_item)
        if item is None or allocation.facts is None:
            continue
        facts = RequestValidated.model_validate(allocation.facts)
        units: dict[str, tuple[str, str]] = {}
        for role, pool in item.unit_needs(facts.parameters).items():
            unit = await repository.free_unit(session, pool=pool, tenant=facts.tenant, lock=True)
            if unit is None:
                break
            units[role] = (pool, unit)
        else:
            server_id = item.allocation.get("target", item.name)
            if "capacity_pool" in item.allocation:
                server_id = await repository.best_server(session, catalog_item=item.name)
                if server_id is None:
                    continue
                await repository.take_capacity(session, server_id=server_id, catalog_item=item.name)
            for pool, unit in units.values():
                await repository.take_unit(
                    session, pool=pool, unit=unit, request_id=allocation.request_id
                )
            allocation.state, allocation.server_id = "held", server_id
            allocation.units = {role: unit for role, (_, unit) in units.items()}
            runtime.publish(
                session,
                ResourceAllocated(
                    **facts.model_dump(),
                    server_id=server_id,
                    quota=allocation.quota,
                    units=allocation.units,
                ),
            )
