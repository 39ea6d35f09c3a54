"""Routes of the allocator: a read-only plan, for the request-api's dry runs."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from allocator import repository
from allocator.assessment import assess
from catalog import Catalog
from events import ServiceRuntime
from events.http import ProblemError


class PlanQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    catalog_item: str = Field(max_length=100)
    tenant: str = Field(max_length=100)
    parameters: dict[str, Any] = {}


class NewUnits(BaseModel):
    model_config = ConfigDict(extra="forbid")

    units: list[Annotated[str, Field(min_length=1, max_length=100)]] = Field(max_length=10_000)


def create_router(runtime: ServiceRuntime, catalog: Catalog) -> APIRouter:
    # Internal: answers the request-api, which has authenticated the caller. Nothing is
    # reserved, so the answer only says what a request would get now.
    router = APIRouter(prefix="/internal")

    @router.post("/plan")
    async def plan(query: PlanQuery) -> dict[str, Any]:
        item = catalog.get(query.catalog_item)
        if item is None:
            raise ProblemError(422, "Unknown catalog item")
        async with runtime.session_factory() as session:
            found = await assess(
                session, item, tenant=query.tenant, parameters=query.parameters, lock=False
            )
        return found.public(item.allocation)

    @router.post("/pools/{pool}/units")
    async def add_stock(pool: str, body: NewUnits) -> dict[str, int]:
        """Stock arrives (devices delivered, seats bought); backorders are filled from it."""
        async with runtime.transaction() as session:
            added = await repository.add_units(session, pool=pool, units=body.units)
        return {"added": added}

    return router
