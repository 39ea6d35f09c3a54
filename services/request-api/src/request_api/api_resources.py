"""Routes for resources: list, read, deprovision, extend the lease, reveal credentials."""

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, Any

import httpx
from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse

from apikeys import Caller
from catalog import Catalog
from events import ServiceRuntime
from events.contracts.requests import LeaseExtended
from events.http import PROBLEM_JSON, ProblemError
from request_api import leases, repository
from request_api.api_common import LeaseExtension, accepted, invalid_lease, requester_of
from request_api.submissions import ResourceNotActive, submit


def create_router(
    runtime: ServiceRuntime,
    catalog: Catalog,
    deployer: httpx.AsyncClient,
    authenticate: Callable[[Request], Awaitable[Caller]],
) -> APIRouter:
    router = APIRouter(prefix="/v1/resources")
    CallerDep = Annotated[Caller, Depends(authenticate)]

    @router.get("")
    async def list_resources(caller: CallerDep) -> dict[str, Any]:
        async with runtime.session_factory() as session:
            resources = await repository.list_resources(session, tenant=caller.tenant)
        return {"items": [resource.public() for resource in resources]}

    @router.get("/{resource_id}")
    async def get_resource(resource_id: uuid.UUID, caller: CallerDep) -> dict[str, Any]:
        async with runtime.session_factory() as session:
            resource = await repository.get_resource(session, resource_id, tenant=caller.tenant)
            if resource is None:
                raise ProblemError(404, "Resource not found")
            requests = await repository.requests_of_resource(session, resource_id)
        return resource.public(requests)

    @router.delete("/{resource_id}", status_code=202)
    async def deprovision_resource(resource_id: uuid.UUID, caller: CallerDep) -> JSONResponse:
        """Files a deprovision request that flows through the same pipeline."""
        async with runtime.session_factory() as session:
            resource = await repository.get_resource(session, resource_id, tenant=caller.tenant)
            if resource is None:
                raise ProblemError(404, "Resource not found")
            original = await repository.get_request(
                session, resource.request_id, tenant=caller.tenant
            )
        parameters = original.parameters if original else {}
        try:
            async with runtime.transaction() as session:
                request = await submit(
                    runtime,
                    session,
                    requester_of(caller),
                    resource.catalog_item,
                    parameters,
                    operation="deprovision",
                    resource_id=resource_id,
                )
        except ResourceNotActive as error:
            raise ProblemError(
                409, "Resource is not active", "Only an active resource can be removed."
            ) from error
        return accepted(request)

    @router.post("/{resource_id}/extend")
    async def extend_lease(
        resource_id: uuid.UUID, body: LeaseExtension, caller: CallerDep
    ) -> dict[str, Any]:
        async with runtime.transaction() as session:
            resource = await repository.get_resource(session, resource_id, tenant=caller.tenant)
            if resource is None:
                raise ProblemError(404, "Resource not found")
            item = catalog.get(resource.catalog_item)
            if resource.state != "active" or item is None:
                raise ProblemError(409, "Only an active resource's lease can be extended")
            try:
                leases.check_expiry(item, body.expires_at, now=datetime.now(UTC))
            except leases.LeaseProblem as problem:
                raise invalid_lease(problem) from problem
            resource.expires_at, resource.lease_warned_at = body.expires_at, None
            runtime.publish(
                session,
                LeaseExtended(
                    request_id=resource.request_id,
                    resource_id=resource.id,
                    expires_at=body.expires_at,
                    extended_by=caller.name,
                ),
            )
            return resource.public()

    @router.get("/{resource_id}/credentials")
    async def reveal_credentials(
        resource_id: uuid.UUID, request: Request, caller: CallerDep
    ) -> Response:
        async with runtime.session_factory() as session:
            resource = await repository.get_resource(session, resource_id, tenant=caller.tenant)
        if resource is None:
            raise ProblemError(404, "Resource not found")
        # The deployer keeps the secret; it checks the same key and reveals once.
        try:
            answer = await deployer.get(
                f"/v1/credentials/{resource_id}",
                headers={"Authorization": request.headers["authorization"]},
            )
        except httpx.HTTPError as error:
            raise ProblemError(
                503, "Credentials store unavailable", type(error).__name__
            ) from error
        media_type = PROBLEM_JSON if answer.status_code >= 400 else "application/json"
        return Response(
            answer.content,
            status_code=answer.status_code,
            media_type=media_type,
            headers={"Cache-Control": "no-store"},
        )

    return router
