"""Reactions of the allocator to events."""

from __future__ import annotations

from allocator import repository
from events import HandlerContext, Router
from events.contracts.allocation import AllocationFailed, ResourceAllocated
from events.contracts.configuration import ConfigurationFailed
from events.contracts.deployment import ProvisioningFailed
from events.contracts.validation import RequestValidated

router = Router()


def allocation_failed(event: RequestValidated, reason: str) -> AllocationFailed:
    return AllocationFailed(request_id=event.request_id, reason=reason)


@router.on(RequestValidated, on_failure=allocation_failed)
async def allocate(event: RequestValidated, ctx: HandlerContext[None]) -> None:
    name = str(event.parameters["name"])
    if await repository.name_in_use(ctx.session, catalog_item=event.catalog_item, name=name):
        ctx.emit(allocation_failed(event, f"{event.catalog_item} {name!r} already exists"))
        return
    server_id = await repository.reserve(ctx.session, catalog_item=event.catalog_item)
    if server_id is None:
        ctx.emit(
            allocation_failed(event, f"no server in the pool has room for {event.catalog_item}")
        )
        return
    await repository.record(
        ctx.session,
        request_id=event.request_id,
        server_id=server_id,
        catalog_item=event.catalog_item,
        name=name,
    )
    ctx.emit(
        ResourceAllocated(
            request_id=event.request_id,
            catalog_item=event.catalog_item,
            parameters=event.parameters,
            requester=event.requester,
            server_id=server_id,
        )
    )


@router.on(ConfigurationFailed)
async def release_after_configuration_failure(
    event: ConfigurationFailed, ctx: HandlerContext[None]
) -> None:
    await repository.release(ctx.session, request_id=event.request_id)


@router.on(ProvisioningFailed)
async def release_after_deployment_failure(
    event: ProvisioningFailed, ctx: HandlerContext[None]
) -> None:
    await repository.release(ctx.session, request_id=event.request_id)
