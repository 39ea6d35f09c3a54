"""Two items of an all-or-nothing bundle ending at the same moment, in two transactions of
the real PostgreSQL: the request-api's handlers must still undo the one that succeeded.
(Each used to see the other still in flight, and neither undid anything.)"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine

from catalog import load_catalog
from devstack.stack import Stack
from events import Event, HandlerContext
from events.contracts.allocation import AllocationReleased
from events.contracts.deployment import ProvisioningCompleted
from events.contracts.requests import RequestSubmitted
from events.envelope import Envelope
from request_api import handlers, models
from request_api.progress import ProgressMetrics

pytestmark = pytest.mark.integration


@pytest.fixture
async def engine(infra: Stack) -> AsyncIterator[AsyncEngine]:
    """The request-api's tables in a schema of their own, committed (two transactions must
    see each other), dropped afterwards."""
    schema = f"bundles_{uuid.uuid4().hex[:8]}"
    admin = create_async_engine(infra.database_url("request_api"))
    async with admin.begin() as connection:
        await connection.execute(text(f"CREATE SCHEMA {schema}"))
    engine = create_async_engine(
        infra.database_url("request_api"),
        connect_args={"server_settings": {"search_path": schema}},
    )
    try:
        async with engine.begin() as connection:
            await connection.run_sync(models.Base.metadata.create_all)
        yield engine
    finally:
        await engine.dispose()
        async with admin.begin() as connection:
            await connection.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        await admin.dispose()


async def bundle_of_two(engine: AsyncEngine, *statuses: str) -> list[uuid.UUID]:
    bundle_id, ids = uuid.uuid4(), [uuid.uuid4() for _ in statuses]
    now = datetime.now(UTC)
    async with AsyncSession(engine) as session, session.begin():
        session.add(
            models.Bundle(id=bundle_id, tenant="default", requester="alice", all_or_nothing=True)
        )
        await session.flush()
        for request_id, status in zip(ids, statuses, strict=True):
            session.add(
                models.ProvisioningRequest(
                    id=request_id,
                    catalog_item="postgres_schema",
                    parameters={"name": f"n_{request_id.hex[:8]}"},
                    requester="alice",
                    tenant="default",
                    operation="provision",
                    status=status,
                    status_changed_at=now,
                    reasons=[],
                    bundle_id=bundle_id,
                    resource_id=uuid.uuid4(),
                )
            )
    return ids


def context(session: AsyncSession, event: Event) -> HandlerContext[handlers.Deps]:
    deps = handlers.Deps(
        catalog=load_catalog(), progress=ProgressMetrics.create(CollectorRegistry())
    )
    return HandlerContext(session=session, envelope=Envelope.wrap(event, source="test"), deps=deps)


async def handle(session: AsyncSession, event: Event) -> list[Event]:
    ctx = context(session, event)
    await handlers.router.registrations[event.type].handler(event, ctx)
    return ctx.emitted


async def test_the_item_that_fails_last_undoes_the_one_that_completed_at_the_same_moment(
    engine: AsyncEngine,
):
    good, bad = await bundle_of_two(engine, "verified", "compensating")
    completed = ProvisioningCompleted(
        request_id=good,
        catalog_item="postgres_schema",
        parameters={"name": "n"},
        requester="alice",
        resource_id=uuid.uuid4(),
        server_id="target",
    )
    released = AllocationReleased(request_id=bad, reason="rolled back")
    async with AsyncSession(engine) as first, AsyncSession(engine) as second:
        # The good item completes; in what its transaction sees, the other has not ended.
        assert not [e for e in await handle(first, completed) if isinstance(e, RequestSubmitted)]
        # The bad item ends while the good one's transaction is still open.
        ending = asyncio.create_task(handle(second, released))
        await asyncio.sleep(0.5)
        assert not ending.done(), "the second ending must wait for the first's decision"
        await first.commit()
        emitted = await asyncio.wait_for(ending, timeout=10)
        await second.commit()
    removals = [(e.operation, e.resource_id) for e in emitted if isinstance(e, RequestSubmitted)]
    assert removals == [("deprovision", completed.resource_id)]
