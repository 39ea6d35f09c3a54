"""Reactions of the configurator to events."""

from __future__ import annotations

from dataclasses import dataclass

from catalog import Catalog
from configurator import rules
from events import HandlerContext, Router
from events.contracts.allocation import ResourceAllocated
from events.contracts.configuration import (
    ConfigurationFailed,
    ConfigurationRolledBack,
    ResourceConfigured,
)
from events.contracts.deployment import DeploymentRolledBack

router = Router()


@dataclass(frozen=True)
class Deps:
    catalog: Catalog


def configuration_failed(
    event: ResourceAllocated, reason: str, code: str = "internal"
) -> ConfigurationFailed:
    return ConfigurationFailed(
        request_id=event.request_id, server_id=event.server_id, reason=reason, code=code
    )


@router.on(ResourceAllocated, on_failure=configuration_failed)
async def configure(event: ResourceAllocated, ctx: HandlerContext[Deps]) -> None:
    """The same rendering serves a deprovision: it names what to remove."""
    try:
        driver, configuration = rules.render(
            ctx.deps.catalog.get(event.catalog_item),
            event.parameters,
            units=event.units,
            facts={"tenant": event.tenant, "requester": event.requester},
        )
    except rules.CannotConfigure as problem:
        ctx.emit(configuration_failed(event, str(problem), "no_template"))
        return
    facts = event.model_dump(exclude={"type", "topic", "version", "server_id", "quota"})
    ctx.emit(
        ResourceConfigured(
            **facts, server_id=event.server_id, driver=driver, configuration=configuration
        )
    )


@router.on(DeploymentRolledBack)
async def undo_configuration(event: DeploymentRolledBack, ctx: HandlerContext[Deps]) -> None:
    """Configuration keeps no state, so undoing it is passing the rollback on."""
    ctx.emit(ConfigurationRolledBack(request_id=event.request_id, server_id=event.server_id))
