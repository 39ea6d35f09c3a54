"""Reactions of the allocator to events: hold at allocation, commit at completion, release
on rollback or deprovision."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import func

from allocator import repository, rules
from allocator.assessment import assess
from allocator.models import Allocation
from catalog import Catalog
from events import HandlerContext, Router
from events.contracts.allocation import (
    AllocationBackordered,
    AllocationFailed,
    AllocationReleased,
    QuotaWarningReached,
    ResourceAllocated,
)
from events.contracts.configuration import ConfigurationFailed, ConfigurationRolledBack
from events.contracts.deployment import ProvisioningCompleted
from events.contracts.requests import CancellationRequested
from events.contracts.validation import RequestValidated

router = Router()


@dataclass(frozen=True)
class Deps:
    catalog: Catalog


Context = HandlerContext[Deps]


def allocation_failed(
    event: RequestValidated, reason: str, code: str = "internal"
) -> AllocationFailed:
    return AllocationFailed(request_id=event.request_id, reason=reason, code=code)


@router.on(RequestValidated, on_failure=allocation_failed)
async def allocate(event: RequestValidated, ctx: Context) -> None:
    if event.operation != "provision":
        await _locate(event, ctx)
        return
    if await repository.allocation_of_request(ctx.session, event.request_id) is not None:
        return  # decided already: a copy of the event under another id changes nothing
    item = ctx.deps.catalog.get(event.catalog_item)
    if item is None:
        ctx.emit(allocation_failed(event, "the catalog item no longer exists", "unknown_item"))
        return
    found = await assess(
        ctx.session, item, tenant=event.tenant, parameters=event.parameters, lock=True
    )
    allocation = Allocation(
        request_id=event.request_id,
        resource_id=event.resource_id,
        tenant=event.tenant,
        catalog_item=item.name,
        name=str(event.parameters.get("name", "")),
    )
    if found.may_wait(item.allocation):
        await repository.save_ledger(
            ctx.session, tenant=event.tenant, ledger=rules.hold(found.needs, found.ledger)
        )
        allocation.state, allocation.quota = "backordered", found.needs
        allocation.facts = event.model_dump(mode="json")
        await repository.record(ctx.session, allocation)
        ctx.emit(
            AllocationBackordered(request_id=event.request_id, reason=found.problems[0].message)
        )
        return
    if found.problems or found.server_id is None:
        problem = found.problems[0]
        # Remembered, so that a copy of this event gets the same answer and no second one.
        allocation.state = "refused"
        await repository.record(ctx.session, allocation)
        ctx.emit(allocation_failed(event, problem.message, problem.code or "internal"))
        return
    server_id, needs = found.server_id, found.needs
    for dimension in rules.warnings(needs, found.ledger):
        quota = found.ledger[dimension]
        assert quota.warning is not None
        ctx.emit(
            QuotaWarningReached(
                request_id=event.request_id,
                tenant=event.tenant,
                dimension=dimension,
                in_use=quota.in_use + needs[dimension],
                warning=quota.warning,
                limit=quota.limit,
            )
        )
    for pool, unit in found.units.values():
        await repository.take_unit(ctx.session, pool=pool, unit=unit, request_id=event.request_id)
    if "capacity_pool" in item.allocation:
        await repository.take_capacity(ctx.session, server_id=server_id, catalog_item=item.name)
    await repository.save_ledger(
        ctx.session, tenant=event.tenant, ledger=rules.hold(needs, found.ledger)
    )
    allocation.server_id, allocation.quota, allocation.state = server_id, needs, "held"
    allocation.units = {role: unit for role, (_, unit) in found.units.items()}
    await repository.record(ctx.session, allocation)
    ctx.emit(
        ResourceAllocated(
            **event.model_dump(exclude={"type", "topic", "version"}),
            server_id=server_id,
            quota=needs,
            units=allocation.units,
        )
    )


@router.on(CancellationRequested)
async def cancel_backorder(event: CancellationRequested, ctx: Context) -> None:
    """A request waiting for stock is stopped here; one further on is the deployer's."""
    allocation = await repository.allocation_of_request(ctx.session, event.request_id)
    if allocation is not None and allocation.state == "backordered":
        await _move(ctx, allocation, "released")
        ctx.emit(AllocationReleased(request_id=event.request_id, reason="cancelled on backorder"))


async def _locate(event: RequestValidated, ctx: Context) -> None:
    """A modify or a deprovision takes nothing new: it finds where the resource lives. (The
    request-api refuses a modify that would change what the resource holds.)"""
    assert event.resource_id is not None
    allocation = await repository.live_allocation_of_resource(ctx.session, event.resource_id)
    if allocation is None or allocation.server_id is None:
        ctx.emit(allocation_failed(event, "the resource holds no live allocation", "not_found"))
        return
    ctx.emit(
        ResourceAllocated(
            **event.model_dump(exclude={"type", "topic", "version"}),
            server_id=allocation.server_id,
            quota=allocation.quota,
            units=allocation.units,
        )
    )


@router.on(ProvisioningCompleted)
async def settle(event: ProvisioningCompleted, ctx: Context) -> None:
    if event.operation == "provision":
        allocation = await repository.allocation_of_request(ctx.session, event.request_id)
        if allocation is not None and allocation.state == "held":
            await _move(ctx, allocation, "committed")
    elif event.operation == "deprovision":
        allocation = await repository.live_allocation_of_resource(ctx.session, event.resource_id)
        if allocation is not None:
            await _move(ctx, allocation, "released")
        ctx.emit(
            AllocationReleased(
                request_id=event.request_id, operation="deprovision", reason="deprovisioned"
            )
        )


@router.on(ConfigurationFailed)
async def release_after_configuration_failure(event: ConfigurationFailed, ctx: Context) -> None:
    await _roll_back(ctx, event.request_id, "configuration failed")


@router.on(ConfigurationRolledBack)
async def release_after_rollback(event: ConfigurationRolledBack, ctx: Context) -> None:
    await _roll_back(ctx, event.request_id, "deployment rolled back")


async def _roll_back(ctx: Context, request_id: uuid.UUID, reason: str) -> None:
    """Release what the request holds. A rollback follows the removal of its deployment, so
    even a commitment (a cancel after completion) is given back."""
    allocation = await repository.allocation_of_request(ctx.session, request_id)
    if allocation is not None and allocation.state in ("backordered", "held", "committed"):
        await _move(ctx, allocation, "released")
    ctx.emit(AllocationReleased(request_id=request_id, reason=reason))


async def _move(ctx: Context, allocation: Allocation, state: str) -> None:
    ledger = await repository.lock_ledger(
        ctx.session, tenant=allocation.tenant, dimensions=allocation.quota
    )
    if state == "committed":
        ledger = rules.commit(allocation.quota, ledger)
    else:
        ledger = rules.release(allocation.quota, ledger, committed=allocation.state == "committed")
        if allocation.server_id is not None:  # a backorder holds no capacity yet
            # Items without a capacity pool have no server row: this then changes nothing.
            await repository.release_capacity(
                ctx.session, server_id=allocation.server_id, catalog_item=allocation.catalog_item
            )
        allocation.released_at = func.now()
    await repository.save_ledger(ctx.session, tenant=allocation.tenant, ledger=ledger)
    units_state = "committed" if state == "committed" else "free"
    await repository.settle_units(ctx.session, request_id=allocation.request_id, state=units_state)
    allocation.state = state
