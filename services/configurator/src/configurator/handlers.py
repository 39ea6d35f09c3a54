"""Reactions of the configurator to events."""

from __future__ import annotations

from dataclasses import dataclass

from catalog import Catalog
from configurator import rules
from events import HandlerContext, Router
from events.contracts.allocation import ResourceAllocated
from events.contracts.configuration import ConfigurationFailed, ResourceConfigured

router = Router()


@dataclass(frozen=True)
class Deps:
    catalog: Catalog


def configuration_failed(event: ResourceAllocated, reason: str) -> ConfigurationFailed:
    return ConfigurationFailed(
        request_id=event.request_id, server_id=event.server_id, reason=reason
    )


@router.on(ResourceAllocated, on_failure=configuration_failed)
async def configure(event: ResourceAllocated, ctx: HandlerContext[Deps]) -> None:
    try:
        configuration = rules.render(ctx.deps.catalog.get(event.catalog_item), event.parameters)
    except rules.CannotConfigure as problem:
        ctx.emit(configuration_failed(event, str(problem)))
        return
    ctx.emit(
        ResourceConfigured(
            request_id=event.request_id,
            catalog_item=event.catalog_item,
            requester=event.requester,
            server_id=event.server_id,
            configuration=configuration,
        )
    )
