"""The allocator's queries, run by the real PostgreSQL: whose units a request may draw (a
shared pool serves every tenant, a tenant's own pool only that tenant, stocking a new pool
makes it its stocker's), and where a just-completed resource lives."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from allocator import models, repository
from devstack.stack import Stack

pytestmark = pytest.mark.integration


@pytest.fixture
async def session(infra: Stack) -> AsyncIterator[AsyncSession]:
    """The allocator's tables in a schema of their own, dropped with the transaction."""
    engine = create_async_engine(infra.database_url("allocator"))
    schema = f"pools_{uuid.uuid4().hex[:8]}"
    try:
        async with engine.connect() as connection:
            transaction = await connection.begin()
            await connection.execute(text(f"CREATE SCHEMA {schema}"))
            await connection.execute(text(f"SET LOCAL search_path TO {schema}"))
            await connection.run_sync(models.Base.metadata.create_all)
            yield AsyncSession(bind=connection)
            await transaction.rollback()
    finally:
        await engine.dispose()


async def test_a_tenants_own_pool_serves_that_tenant_alone(session: AsyncSession):
    seed = {
        "pools": {
            "licence:shared": {"units": ["s-1"]},
            "licence:eng-only": {"tenant": "engineering", "units": ["e-1"]},
        }
    }
    await repository.sync_units(session, seed)
    free = repository.free_unit
    assert await free(session, pool="licence:shared", tenant="finance", lock=True) == "s-1"
    assert await free(session, pool="licence:eng-only", tenant="engineering", lock=True) == "e-1"
    assert await free(session, pool="licence:eng-only", tenant="finance", lock=True) is None
    assert await free(session, pool="licence:eng-only", tenant="finance", lock=False) is None


async def test_stock_for_a_new_pool_makes_the_pool_its_tenants_and_stock_for_a_known_one_adds_units(
    session: AsyncSession,
):
    added = await repository.add_units(session, pool="lab:new", tenant="finance", units=["n-1"])
    assert added == 1
    pool = await repository.get_pool(session, "lab:new")
    assert pool is not None and pool.tenant == "finance"
    # Known units are left as they are; the owner stays the first stocker's.
    again = await repository.add_units(session, pool="lab:new", tenant=None, units=["n-1", "n-2"])
    assert again == 1
    pool = await repository.get_pool(session, "lab:new")
    assert pool is not None and pool.tenant == "finance"
    assert await repository.free_unit(session, pool="lab:new", tenant="default", lock=False) is None


async def test_a_resource_whose_completion_is_not_settled_yet_is_found_where_it_lives(
    session: AsyncSession,
):
    """A modify filed the moment its resource completed may reach the allocator before the
    completion that commits the allocation: the held allocation still locates it."""
    resource_id = uuid.uuid4()
    session.add(
        models.Allocation(
            request_id=uuid.uuid4(),
            resource_id=resource_id,
            tenant="default",
            server_id="pg-local",
            catalog_item="directory_account",
            name="ada",
            state="held",
        )
    )
    await session.flush()
    found = await repository.live_allocation_of_resource(session, resource_id)
    assert found is not None and found.server_id == "pg-local"
    found.state = "released"
    await session.flush()
    assert await repository.live_allocation_of_resource(session, resource_id) is None
