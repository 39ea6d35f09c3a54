"""Routes of the allocator: a read-only plan, for the request-api's dry runs, and stock
arriving in a pool. Both want an API key: the plan is the caller's tenant's, stock an admin's."""

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel, ConfigDict, Field

from allocator import repository
from allocator.assessment import assess
from apikeys import Caller
from apikeys.authorization import Action, documented, may, require
from catalog import Catalog
from events import ServiceRuntime
from events.http import PRINTABLE, ProblemError


class PlanQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    catalog_item: str = Field(max_length=100)
    parameters: dict[str, Any] = {}


class NewUnits(BaseModel):
    model_config = ConfigDict(extra="forbid")

    units: list[Annotated[str, Field(min_length=1, max_length=100, pattern=PRINTABLE)]] = Field(
        max_length=10_000
    )


class StockAdded(BaseModel):
    pool: str
    # Shared by every tenant, or the caller's tenant's own.
    shared: bool
    # Units that were new (ones already known are left as they are).
    added: int


def create_router(
    runtime: ServiceRuntime,
    catalog: Catalog,
    authenticate: Callable[[Request], Awaitable[Caller]],
) -> APIRouter:
    router = APIRouter(prefix="/internal")
    CallerDep = Annotated[Caller, Depends(authenticate)]

    @router.post("/plan")
    async def plan(query: PlanQuery, caller: CallerDep) -> dict[str, Any]:
        """What a request of the caller's tenant would get now; nothing is reserved. The
        request-api asks it with its caller's key, for a dry run."""
        item = catalog.get(query.catalog_item)
        if item is None:
            raise ProblemError(422, "Unknown catalog item")
        async with runtime.session_factory() as session:
            found = await assess(
                session, item, tenant=caller.tenant, parameters=query.parameters, lock=False
            )
        return found.public(item.allocation)

    @router.post("/pools/{pool}/units", openapi_extra=documented(Action.MANAGE_TENANT_POOLS))
    async def add_stock(
        pool: Annotated[str, Path(max_length=100, pattern=PRINTABLE)],
        body: NewUnits,
        caller: CallerDep,
    ) -> StockAdded:
        """Stock arrives (devices delivered, seats bought); backorders are filled from it.
        A pool shared by every tenant is stocked by the platform's operator alone; a
        tenant's own pool by its admins (or the operator). A pool not known yet is created:
        shared when the operator names it, else the admin's tenant's own. Another tenant's
        own pool is not found."""
        async with runtime.transaction() as session:
            found = await repository.get_pool(session, pool)
            if found is not None and found.tenant not in (None, caller.tenant):
                raise ProblemError(404, "Pool not found")
            if found is None:
                shared = may(caller, Action.MANAGE_SHARED_POOLS)
            else:
                shared = found.tenant is None
            require(caller, Action.MANAGE_SHARED_POOLS if shared else Action.MANAGE_TENANT_POOLS)
            tenant = None if shared else caller.tenant
            added = await repository.add_units(session, pool=pool, tenant=tenant, units=body.units)
        return StockAdded(pool=pool, shared=shared, added=added)

    return router
