"""Routes for bundles: several items in one request (an onboarding: account, licence,
laptop), each followed as a request of its own, with a rolled-up status."""

import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncSession

from apikeys import Caller
from apikeys.authorization import Action, Subject, documented, require
from catalog import Catalog
from events import ServiceRuntime
from events.http import ProblemError
from request_api import bundles, leases, repository
from request_api.api_common import (
    NewRequest,
    invalid,
    invalid_lease,
    item_problems,
    requester_of,
)
from request_api.models import Bundle
from request_api.submissions import Requester, submit


class NewBundle(BaseModel):
    model_config = ConfigDict(extra="forbid")

    items: list[NewRequest] = Field(min_length=1, max_length=10)
    # One failed item undoes the others.
    all_or_nothing: bool = False


def create_router(
    runtime: ServiceRuntime,
    catalog: Catalog,
    authenticate: Callable[[Request], Awaitable[Caller]],
) -> APIRouter:
    router = APIRouter(prefix="/v1/bundles")
    CallerDep = Annotated[Caller, Depends(authenticate)]

    @router.post("", status_code=202)
    async def submit_bundle(body: NewBundle, caller: CallerDep) -> JSONResponse:
        errors = [
            error
            for index, wanted in enumerate(body.items)
            for error in item_problems(
                catalog,
                wanted.catalog_item,
                wanted.parameters,
                tenant=caller.tenant,
                prefix=f"items.{index}.",
            )[1]
        ]
        if errors:
            raise invalid("Invalid bundle", errors)
        async with runtime.tenant_transaction(caller.tenant) as session:
            bundle = await file_bundle(
                runtime,
                session,
                catalog,
                requester_of(caller),
                body.items,
                all_or_nothing=body.all_or_nothing,
            )
            answer = await _bundle_view(session, bundle)
        return JSONResponse(
            answer, status_code=202, headers={"Location": f"/v1/bundles/{bundle.id}"}
        )

    @router.get("/{bundle_id}", openapi_extra=documented(Action.READ))
    async def get_bundle(bundle_id: uuid.UUID, caller: CallerDep) -> dict[str, Any]:
        async with runtime.tenant_transaction(caller.tenant) as session:
            bundle = await repository.get_bundle(session, bundle_id, tenant=caller.tenant)
            if bundle is None:
                raise ProblemError(404, "Bundle not found")
            require(caller, Action.READ, Subject(requester=bundle.requester))
            return await _bundle_view(session, bundle)

    return router


async def file_bundle(
    runtime: ServiceRuntime,
    session: AsyncSession,
    catalog: Catalog,
    requester: Requester,
    items: Sequence[NewRequest],
    *,
    all_or_nothing: bool,
) -> Bundle:
    """Record the bundle and file each item as a request of its own, in the caller's
    transaction. The items were checked against the catalog (`item_problems`) beforehand."""
    now = datetime.now(UTC)
    bundle = await repository.add_bundle(
        session, tenant=requester.tenant, requester=requester.name, all_or_nothing=all_or_nothing
    )
    for wanted in items:
        item = catalog.get(wanted.catalog_item)
        assert item is not None
        try:
            expires_at = leases.initial_expiry(item, wanted.expires_at, now=now)
        except leases.LeaseProblem as problem:
            raise invalid_lease(problem) from problem
        await submit(
            runtime,
            session,
            requester,
            item.name,
            wanted.parameters,
            operation="provision",
            resource_id=uuid.uuid4(),
            expires_at=expires_at,
            bundle_id=bundle.id,
        )
    return bundle


async def _bundle_view(session: AsyncSession, bundle: Bundle) -> dict[str, Any]:
    members = await repository.bundle_members(session, bundle.id)
    completed = [m.id for m in members if m.status == "completed"]
    live = await repository.live_resources(session, completed)
    return {
        "id": str(bundle.id),
        "all_or_nothing": bundle.all_or_nothing,
        "status": bundles.roll_up(
            [m.status for m in members],
            all_or_nothing=bundle.all_or_nothing,
            live_resources=len(live),
        ),
        "items": [m.public() for m in members],
    }
