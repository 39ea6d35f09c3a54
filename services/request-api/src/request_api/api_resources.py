"""Routes for resources: read, modify, deprovision, extend the lease, re-verify and
remediate drift, reveal credentials. Listing them is request_api.search's."""

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, Any

import httpx
from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse

from apikeys import Caller
from apikeys.authorization import Action, documented
from catalog import Catalog
from events import ServiceRuntime
from events.contracts.requests import LeaseExtended, VerificationRequested
from events.http import PROBLEM_JSON, ProblemError
from request_api import leases, repository
from request_api.access import guarded_resource
from request_api.api_common import (
    LeaseExtension,
    ResourceChange,
    accepted,
    change_problems,
    invalid,
    invalid_lease,
    requester_of,
)
from request_api.models import Resource
from request_api.schemas import ETAG, ResourceView
from request_api.submissions import ResourceNotActive, submit
from request_api.versions import IfMatch, etag, require_match


def create_router(
    runtime: ServiceRuntime,
    catalog: Catalog,
    deployer: httpx.AsyncClient,
    authenticate: Callable[[Request], Awaitable[Caller]],
) -> APIRouter:
    router = APIRouter(prefix="/v1/resources")
    CallerDep = Annotated[Caller, Depends(authenticate)]

    @router.get(
        "/{resource_id}",
        openapi_extra=documented(Action.READ),
        responses={200: {"description": "The resource", "headers": ETAG}},
    )
    async def get_resource(
        resource_id: uuid.UUID, caller: CallerDep, response: Response
    ) -> ResourceView:
        async with runtime.tenant_transaction(caller.tenant) as session:
            resource = await guarded_resource(session, resource_id, caller, Action.READ)
            requests = await repository.requests_of_resource(session, resource_id)
        response.headers["ETag"] = etag(resource.version)
        return ResourceView.of(resource, requests)

    @router.delete("/{resource_id}", status_code=202, openapi_extra=documented(Action.DEPROVISION))
    async def deprovision_resource(
        resource_id: uuid.UUID, caller: CallerDep, if_match: IfMatch = None
    ) -> JSONResponse:
        """Files a deprovision request that flows through the same pipeline."""
        async with runtime.tenant_transaction(caller.tenant) as session:
            resource = await guarded_resource(session, resource_id, caller, Action.DEPROVISION)
        return await _file(resource, "deprovision", resource.parameters, caller, if_match=if_match)

    @router.patch("/{resource_id}", status_code=202, openapi_extra=documented(Action.MODIFY))
    async def modify_resource(
        resource_id: uuid.UUID, body: ResourceChange, caller: CallerDep, if_match: IfMatch = None
    ) -> JSONResponse:
        """Files a modify request: changed parameters, a new secret, or both. Rotating the
        secret is an action of its own (`rotate_credentials`) in the authorization table."""
        actions = [Action.MODIFY] + ([Action.ROTATE_CREDENTIALS] if body.rotate_credentials else [])
        resource = await _active(resource_id, caller, *actions)
        changed = {**resource.parameters, **body.parameters}
        if changed == resource.parameters and not body.rotate_credentials:
            raise invalid(
                "Nothing to change",
                [{"field": "parameters", "message": "no parameter differs from the resource's"}],
            )
        item = catalog.get(resource.catalog_item)
        if item is None:
            raise ProblemError(409, "The resource's catalog item no longer exists")
        problems = change_problems(item, resource.parameters, changed, tenant=caller.tenant)
        if problems:
            raise invalid("Invalid change", problems)
        return await _file(
            resource,
            "modify",
            changed,
            caller,
            rotate_credentials=body.rotate_credentials,
            if_match=if_match,
        )

    @router.post(
        "/{resource_id}/remediate", status_code=202, openapi_extra=documented(Action.REMEDIATE)
    )
    async def remediate_resource(resource_id: uuid.UUID, caller: CallerDep) -> JSONResponse:
        """Files a modify request that puts the resource back as the platform left it."""
        resource = await _active(resource_id, caller, Action.REMEDIATE)
        return await _file(resource, "modify", resource.parameters, caller)

    @router.post("/{resource_id}/verify", status_code=202, openapi_extra=documented(Action.VERIFY))
    async def verify_resource(resource_id: uuid.UUID, caller: CallerDep) -> dict[str, Any]:
        """Asks the deployer to re-check the resource in its target now; a drift shows on
        the resource (and as a `drift.detected` event)."""
        async with runtime.tenant_transaction(caller.tenant) as session:
            resource = await guarded_resource(session, resource_id, caller, Action.VERIFY)
            if resource.state != "active":
                raise ProblemError(409, "Only an active resource can be verified")
            runtime.publish(
                session,
                VerificationRequested(
                    request_id=resource.request_id,
                    resource_id=resource.id,
                    requested_by=caller.name,
                ),
            )
        return {"resource_id": str(resource_id), "verification": "requested"}

    async def _active(resource_id: uuid.UUID, caller: Caller, *actions: Action) -> Resource:
        async with runtime.tenant_transaction(caller.tenant) as session:
            resource = await guarded_resource(session, resource_id, caller, *actions)
        if resource.state != "active":
            raise ProblemError(409, "Resource is not active", "Only an active resource changes.")
        return resource

    async def _file(
        resource: Resource,
        operation: str,
        parameters: dict[str, Any],
        caller: Caller,
        *,
        rotate_credentials: bool = False,
        if_match: str | None = None,
    ) -> JSONResponse:
        """A modify or deprovision of the resource, through the same pipeline as a request.
        Filing it gives the resource a new version, so a second change made from the same
        read fails its `If-Match`."""
        try:
            async with runtime.tenant_transaction(caller.tenant) as session:
                version = await repository.locked_version(
                    session, Resource, resource.id, tenant=caller.tenant
                )
                if version is None:
                    raise ProblemError(404, "Resource not found")
                require_match(if_match, version)
                await repository.touch_resource(session, resource.id)
                request = await submit(
                    runtime,
                    session,
                    requester_of(caller),
                    resource.catalog_item,
                    parameters,
                    operation=operation,
                    resource_id=resource.id,
                    rotate_credentials=rotate_credentials,
                )
        except ResourceNotActive as error:
            raise ProblemError(
                409, "Resource is not active", f"Only an active resource can take a {operation}."
            ) from error
        return accepted(request)

    @router.post("/{resource_id}/extend", openapi_extra=documented(Action.EXTEND))
    async def extend_lease(
        resource_id: uuid.UUID,
        body: LeaseExtension,
        caller: CallerDep,
        response: Response,
        if_match: IfMatch = None,
    ) -> dict[str, Any]:
        async with runtime.tenant_transaction(caller.tenant) as session:
            version = await repository.locked_version(
                session, Resource, resource_id, tenant=caller.tenant
            )
            resource = await guarded_resource(session, resource_id, caller, Action.EXTEND)
            if version is None:
                raise ProblemError(404, "Resource not found")
            require_match(if_match, version)
            item = catalog.get(resource.catalog_item)
            if resource.state != "active" or item is None:
                raise ProblemError(409, "Only an active resource's lease can be extended")
            try:
                leases.check_expiry(item, body.expires_at, now=datetime.now(UTC))
            except leases.LeaseProblem as problem:
                raise invalid_lease(problem) from problem
            resource.expires_at, resource.lease_warned_at = body.expires_at, None
            await session.flush()
            await session.refresh(resource, ["version"])
            response.headers["ETag"] = etag(resource.version)
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

    @router.get("/{resource_id}/credentials", openapi_extra=documented(Action.REVEAL_CREDENTIALS))
    async def reveal_credentials(
        resource_id: uuid.UUID, request: Request, caller: CallerDep
    ) -> Response:
        async with runtime.tenant_transaction(caller.tenant) as session:
            await guarded_resource(session, resource_id, caller, Action.REVEAL_CREDENTIALS)
        # The deployer keeps the secret; it checks the same key, the same table, and
        # reveals once.
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
