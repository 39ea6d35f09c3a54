"""Routes about people: what a person holds, and offboarding, which files a deprovision for
every active resource they own (their directory account first)."""

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncSession

from apikeys import Caller
from apikeys.authorization import Action, Subject, documented, require
from events import ServiceRuntime
from request_api import repository
from request_api.api_common import requester_of
from request_api.models import Resource
from request_api.submissions import Requester, ResourceNotActive, submit

PersonName = Annotated[str, Path(pattern=r"^[a-z][a-z0-9._-]{1,63}$")]

# Access goes before anything else: the account is disabled first.
FIRST = ("directory_account",)


def create_router(
    runtime: ServiceRuntime, authenticate: Callable[[Request], Awaitable[Caller]]
) -> APIRouter:
    router = APIRouter(prefix="/v1/people")
    CallerDep = Annotated[Caller, Depends(authenticate)]

    @router.get("/{person}/resources", openapi_extra=documented(Action.READ_PERSON))
    async def resources_of_person(person: PersonName, caller: CallerDep) -> dict[str, Any]:
        """What the person holds: for the person themself, an admin or an auditor."""
        require(caller, Action.READ_PERSON, Subject(owner=person))
        async with runtime.tenant_transaction(caller.tenant) as session:
            owned = await repository.resources_of_owner(session, person, tenant=caller.tenant)
        return {
            "person": person,
            "items": [resource.public() for resource in owned],
            # Still held: what an offboarding has not (yet) removed.
            "remaining": [str(r.id) for r in owned if r.state in ("active", "retiring")],
        }

    @router.post("/{person}/offboard", status_code=202, openapi_extra=documented(Action.OFFBOARD))
    async def offboard(person: PersonName, caller: CallerDep) -> JSONResponse:
        require(caller, Action.OFFBOARD, Subject(owner=person))
        async with runtime.tenant_transaction(caller.tenant) as session:
            filed, not_filed = await offboard_person(runtime, session, requester_of(caller), person)
        return JSONResponse(
            {"person": person, "filed": filed, "not_filed": not_filed}, status_code=202
        )

    return router


async def offboard_person(
    runtime: ServiceRuntime, session: AsyncSession, requester: Requester, person: str
) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """File a deprovision for every active resource `person` owns in the requester's tenant,
    in the caller's transaction: what was filed (with its request id), and what was not."""
    filed: list[dict[str, str]] = []
    owned = await repository.resources_of_owner(session, person, tenant=requester.tenant)
    active = [r for r in owned if r.state == "active"]
    active.sort(key=lambda r: r.catalog_item not in FIRST)
    not_filed = [_entry(r, reason="already being removed") for r in owned if r.state == "retiring"]
    for resource in active:
        try:
            request = await submit(
                runtime,
                session,
                requester,
                resource.catalog_item,
                resource.parameters,
                operation="deprovision",
                resource_id=resource.id,
            )
        except ResourceNotActive:
            not_filed.append(_entry(resource, reason="no longer active"))
            continue
        filed.append({**_entry(resource), "request_id": str(request.id)})
    return filed, not_filed


def _entry(resource: Resource, reason: str | None = None) -> dict[str, str]:
    entry = {"resource_id": str(resource.id), "catalog_item": resource.catalog_item}
    return entry | ({"reason": reason} if reason else {})
