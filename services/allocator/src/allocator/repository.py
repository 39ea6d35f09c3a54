"""Every query of the allocator."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from allocator.models import Allocation, ServerCapacity
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


async def name_in_use(session: AsyncSession, *, catalog_item: str, name: str) -> bool:
    found = await session.scalar(
        select(Allocation.request_id).where(
            Allocation.catalog_item == catalog_item,
            Allocation.name == name,
            Allocation.released_at.is_(None),
        )
    )
    return found is not None


async def reserve(session: AsyncSession, *, catalog_item: str) -> str | None:
    """Take one unit on the server with the most room left; None when the pool is full.

    The row lock serialises concurrent reservations, and the check constraint is a last
    line of defence: a server can never be over-filled.
    """
    server_id = await session.scalar(
        select(ServerCapacity.server_id)
        .where(
            ServerCapacity.catalog_item == catalog_item,
            ServerCapacity.used < ServerCapacity.capacity,
        )
        .order_by((ServerCapacity.capacity - ServerCapacity.used).desc(), ServerCapacity.server_id)
        .limit(1)
        .with_for_update()
    )
    if server_id is None:
        return None
    await session.execute(
        update(ServerCapacity)
        .where(ServerCapacity.server_id == server_id, ServerCapacity.catalog_item == catalog_item)
        .values(used=ServerCapacity.used + 1)
    )
    return server_id


async def record(
    session: AsyncSession, *, request_id: uuid.UUID, server_id: str, catalog_item: str, name: str
) -> None:
    session.add(
        Allocation(request_id=request_id, server_id=server_id, catalog_item=catalog_item, name=name)
    )
    await session.flush()


async def release(session: AsyncSession, *, request_id: uuid.UUID) -> bool:
    """Give the request's unit back; False if it held none (or already gave it back)."""
    released = (
        await session.execute(
            update(Allocation)
            .where(Allocation.request_id == request_id, Allocation.released_at.is_(None))
            .values(released_at=func.now())
            .returning(Allocation.server_id, Allocation.catalog_item)
        )
    ).first()
    if released is None:
        return False
    await session.execute(
        update(ServerCapacity)
        .where(
            ServerCapacity.server_id == released.server_id,
            ServerCapacity.catalog_item == released.catalog_item,
        )
        .values(used=ServerCapacity.used - 1)
    )
    return True
