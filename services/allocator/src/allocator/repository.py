"""Every query of the allocator."""

from __future__ import annotations

import ipaddress
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from allocator.models import Allocation, Pool, PoolUnit, ServerCapacity, TenantQuota
from allocator.rules import Quota
from allocator.settings import PoolServer


async def sync_pool(session: AsyncSession, pool: list[PoolServer]) -> None:
    """Make capacities match the configured pool; what is in use stays counted."""
    for server in pool:
        for item, capacity in server.capacity.items():
            statement = insert(ServerCapacity).values(
                server_id=server.id, catalog_item=item, capacity=capacity, used=0
            )
            await session.execute(
                statement.on_conflict_do_update(
                    index_elements=["server_id", "catalog_item"],
                    set_={"capacity": func.greatest(capacity, ServerCapacity.used)},
                )
            )


async def sync_quotas(session: AsyncSession, organisation: Mapping[str, Any]) -> None:
    """Set every tenant's limits from the seed; usage is kept."""
    for tenant, spec in organisation.get("tenants", {}).items():
        for dimension, quota in spec.get("quotas", {}).items():
            values = {"limit": int(quota["limit"]), "warning": quota.get("warning")}
            await session.execute(
                insert(TenantQuota)
                .values(tenant=tenant, dimension=dimension, held=0, committed=0, **values)
                .on_conflict_do_update(index_elements=["tenant", "dimension"], set_=values)
            )


async def name_in_use(session: AsyncSession, *, catalog_item: str, name: str) -> bool:
    found = await session.scalar(
        select(Allocation.request_id).where(
            Allocation.catalog_item == catalog_item,
            Allocation.name == name,
            Allocation.state.in_(("backordered", "held", "committed")),
        )
    )
    return found is not None


async def lock_ledger(
    session: AsyncSession, *, tenant: str, dimensions: Iterable[str], lock: bool = True
) -> dict[str, Quota]:
    """The tenant's quotas on these dimensions, locked until commit (in a fixed order, so
    concurrent requests never deadlock); `lock=False` only reads, for a plan."""
    query = (
        select(TenantQuota)
        .where(TenantQuota.tenant == tenant, TenantQuota.dimension.in_(sorted(dimensions)))
        .order_by(TenantQuota.dimension)
    )
    rows = (await session.scalars(query.with_for_update() if lock else query)).all()
    return {row.dimension: Quota(row.limit, row.warning, row.held, row.committed) for row in rows}


async def save_ledger(session: AsyncSession, *, tenant: str, ledger: Mapping[str, Quota]) -> None:
    for dimension, quota in ledger.items():
        await session.execute(
            update(TenantQuota)
            .where(TenantQuota.tenant == tenant, TenantQuota.dimension == dimension)
            .values(held=quota.held, committed=quota.committed)
        )


async def best_server(session: AsyncSession, *, catalog_item: str, lock: bool = True) -> str | None:
    """The server with the most room left for the item; None when the pool is full.

    Locked, the row serialises concurrent reservations until commit; the check constraint
    is a last line of defence: a server can never be over-filled.
    """
    query = (
        select(ServerCapacity.server_id)
        .where(
            ServerCapacity.catalog_item == catalog_item,
            ServerCapacity.used < ServerCapacity.capacity,
        )
        .order_by((ServerCapacity.capacity - ServerCapacity.used).desc(), ServerCapacity.server_id)
        .limit(1)
    )
    return await session.scalar(query.with_for_update() if lock else query)


async def take_capacity(session: AsyncSession, *, server_id: str, catalog_item: str) -> None:
    await _change_capacity(session, server_id, catalog_item, +1)


async def release_capacity(session: AsyncSession, *, server_id: str, catalog_item: str) -> None:
    await _change_capacity(session, server_id, catalog_item, -1)


async def _change_capacity(session: AsyncSession, server_id: str, item: str, delta: int) -> None:
    await session.execute(
        update(ServerCapacity)
        .where(ServerCapacity.server_id == server_id, ServerCapacity.catalog_item == item)
        .values(used=ServerCapacity.used + delta)
    )


async def record(session: AsyncSession, allocation: Allocation) -> None:
    session.add(allocation)
    await session.flush()


async def allocation_of_request(session: AsyncSession, request_id: uuid.UUID) -> Allocation | None:
    return await session.get(Allocation, request_id, with_for_update=True)


LIVE = ("held", "committed")


async def live_allocation_of_resource(
    session: AsyncSession, resource_id: uuid.UUID
) -> Allocation | None:
    # Still `held` too: a modify or deprovision filed the moment the provision completed may
    # arrive before the completion that commits it (they travel on different topics).
    return await session.scalar(
        select(Allocation)
        .where(Allocation.resource_id == resource_id, Allocation.state.in_(LIVE))
        .with_for_update()
    )


def units_of(spec: Mapping[str, Any]) -> list[str]:
    """A pool's units from the seed: a list, `{"count", "prefix"}`, or `{"cidr"}`."""
    units = spec["units"]
    if isinstance(units, list):
        return [str(unit) for unit in units]
    if "cidr" in units:
        return [str(host) for host in ipaddress.ip_network(units["cidr"]).hosts()]
    return [f"{units.get('prefix', '')}{n:03d}" for n in range(1, int(units["count"]) + 1)]


async def sync_units(session: AsyncSession, organisation: Mapping[str, Any]) -> None:
    """Add the seed's pools and units that are missing; units in use are never touched. A
    pool the seed gives a `tenant` is that tenant's own; any other is shared."""
    for pool, spec in organisation.get("pools", {}).items():
        await session.execute(
            insert(Pool)
            .values(name=pool, tenant=spec.get("tenant"))
            .on_conflict_do_update(index_elements=[Pool.name], set_={"tenant": spec.get("tenant")})
        )
        rows = [{"pool": pool, "unit": unit, "state": "free"} for unit in units_of(spec)]
        if rows:
            await session.execute(insert(PoolUnit).values(rows).on_conflict_do_nothing())


async def free_unit(session: AsyncSession, *, pool: str, tenant: str, lock: bool) -> str | None:
    """The first free unit of the pool, unless the pool is another tenant's own. Locked, a
    unit another request is taking is waited for and then skipped, so a locked row never
    passes for missing stock."""
    others = select(Pool.name).where(Pool.tenant.is_not(None), Pool.tenant != tenant)
    query = (
        select(PoolUnit.unit)
        .where(PoolUnit.pool == pool, PoolUnit.state == "free", PoolUnit.pool.not_in(others))
        .order_by(PoolUnit.unit)
        .limit(1)
    )
    return await session.scalar(query.with_for_update() if lock else query)


async def take_unit(session: AsyncSession, *, pool: str, unit: str, request_id: uuid.UUID) -> None:
    await session.execute(
        update(PoolUnit)
        .where(PoolUnit.pool == pool, PoolUnit.unit == unit)
        .values(state="held", request_id=request_id)
    )


async def settle_units(session: AsyncSession, *, request_id: uuid.UUID, state: str) -> None:
    """Commit the request's units, or free them (`state="free"`)."""
    await session.execute(
        update(PoolUnit)
        .where(PoolUnit.request_id == request_id)
        .values(state=state, request_id=request_id if state != "free" else None)
    )


async def backorders(session: AsyncSession, *, limit: int = 20) -> list[Allocation]:
    """The oldest waiting requests, claimed so that replicas never fill one twice."""
    return list(
        (
            await session.scalars(
                select(Allocation)
                .where(Allocation.state == "backordered")
                .order_by(Allocation.created_at)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        ).all()
    )


async def get_pool(session: AsyncSession, name: str) -> Pool | None:
    return await session.get(Pool, name, with_for_update=True)


async def add_units(
    session: AsyncSession, *, pool: str, tenant: str | None, units: list[str]
) -> int:
    """Stock arrives: new free units (ones already known are left as they are). A pool not
    known yet is created, for `tenant` alone or (None) shared."""
    await session.execute(insert(Pool).values(name=pool, tenant=tenant).on_conflict_do_nothing())
    if not units:
        return 0
    added = await session.execute(
        insert(PoolUnit)
        .values([{"pool": pool, "unit": unit, "state": "free"} for unit in units])
        .on_conflict_do_nothing()
        .returning(PoolUnit.unit)
    )
    return len(added.all())
