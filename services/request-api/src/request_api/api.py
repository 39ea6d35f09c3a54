"""Routes of the public REST API. Thin: parse, check, one transaction, answer."""

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, Any, NoReturn

import httpx
from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncSession

from apikeys import Caller
from catalog import Catalog
from events import Event, ServiceRuntime
from events.contracts.requests import (
    CancellationRequested,
    LeaseExtended,
    RequestApproved,
    RequestDenied,
)
from events.http import PROBLEM_JSON, ProblemError
from request_api import leases, planning, repository
from request_api.models import ProvisioningRequest
from request_api.submissions import Requester, ResourceNotActive, submit


class NewRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    catalog_item: str = Field(min_length=1, max_length=100)
    parameters: dict[str, Any] = Field(default_factory=dict)
    # When the resource is deprovisioned by itself; the item's default lease otherwise.
    expires_at: AwareDatetime | None = None


class Decision(BaseModel):
    model_config = ConfigDict(extra="forbid")

    justification: str = Field(min_length=3, max_length=2000)


class LeaseExtension(BaseModel):
    model_config = ConfigDict(extra="forbid")

    expires_at: AwareDatetime


def _requester(caller: Caller) -> Requester:
    return Requester(name=caller.name, tenant=caller.tenant, roles=caller.roles)


def _accepted(request: ProvisioningRequest) -> JSONResponse:
    return JSONResponse(
        request.public(), status_code=202, headers={"Location": f"/v1/requests/{request.id}"}
    )


def create_router(
    runtime: ServiceRuntime,
    catalog: Catalog,
    deployer: httpx.AsyncClient,
    allocator: httpx.AsyncClient,
    authenticate: Callable[[Request], Awaitable[Caller]],
) -> APIRouter:
    router = APIRouter(prefix="/v1")
    CallerDep = Annotated[Caller, Depends(authenticate)]

    @router.get("/catalog")
    async def list_catalog(_: CallerDep) -> dict[str, Any]:
        return {"items": [item.public() for item in catalog.items.values()]}

    @router.post("/requests", status_code=202)
    async def submit_request(
        body: NewRequest, caller: CallerDep, dry_run: bool = False
    ) -> JSONResponse:
        """Accepts a request (202); with `dry_run=true`, answers at once (200) with the
        decision it would get, its quota and cost, and reserves nothing."""
        item = catalog.get(body.catalog_item)
        if item is None:
            raise ProblemError(
                422,
                "Unknown catalog item",
                f"{body.catalog_item!r} is not in the catalog; GET /v1/catalog lists the items.",
                errors=[{"field": "catalog_item", "message": "unknown catalog item"}],
            )
        problems = item.schema_problems(body.parameters)
        if problems:
            raise ProblemError(
                422,
                "Invalid parameters",
                "; ".join(f"{p.field}: {p.message}" for p in problems),
                errors=[{"field": p.field, "message": p.message} for p in problems],
            )
        if dry_run:
            answer = await planning.plan(
                catalog,
                item,
                body.parameters,
                tenant=caller.tenant,
                roles=caller.roles,
                allocator=allocator,
            )
            return JSONResponse(answer)
        try:
            expires_at = leases.initial_expiry(item, body.expires_at, now=datetime.now(UTC))
        except leases.LeaseProblem as problem:
            raise ProblemError(
                422,
                "Invalid lease",
                str(problem),
                errors=[{"field": "expires_at", "message": str(problem)}],
            ) from problem
        async with runtime.transaction() as session:
            request = await submit(
                runtime,
                session,
                _requester(caller),
                item.name,
                body.parameters,
                operation="provision",
                resource_id=uuid.uuid4(),
                expires_at=expires_at,
            )
        return _accepted(request)

    @router.get("/requests/{request_id}")
    async def get_request(request_id: uuid.UUID, caller: CallerDep) -> dict[str, Any]:
        async with runtime.session_factory() as session:
            request = await repository.get_request(session, request_id, tenant=caller.tenant)
        if request is None:
            raise ProblemError(404, "Request not found")
        return request.public()

    @router.post("/requests/{request_id}/cancel", status_code=202)
    async def cancel_request(request_id: uuid.UUID, caller: CallerDep) -> JSONResponse:
        """Stops the request; once anything was allocated or deployed, it is undone first."""
        async with runtime.transaction() as session:
            request = await repository.request_cancel(session, request_id, tenant=caller.tenant)
            if request is None:
                await _refuse(
                    session,
                    request_id,
                    caller,
                    "Request cannot be cancelled",
                    "It has ended, is a deprovision, or was cancelled already.",
                )
            runtime.publish(
                session,
                CancellationRequested(request_id=request_id, reason=f"cancelled by {caller.name}"),
            )
        return JSONResponse(request.public(), status_code=202)

    @router.post("/requests/{request_id}/approve", status_code=202)
    async def approve(request_id: uuid.UUID, body: Decision, caller: CallerDep) -> JSONResponse:
        return await _decide(request_id, body, caller, approve=True)

    @router.post("/requests/{request_id}/deny", status_code=202)
    async def deny(request_id: uuid.UUID, body: Decision, caller: CallerDep) -> JSONResponse:
        return await _decide(request_id, body, caller, approve=False)

    async def _refuse(
        session: AsyncSession, request_id: uuid.UUID, caller: Caller, title: str, detail: str
    ) -> NoReturn:
        """409 when the caller's request exists but is past this action, 404 otherwise."""
        if await repository.get_request(session, request_id, tenant=caller.tenant):
            raise ProblemError(409, title, detail)
        raise ProblemError(404, "Request not found")

    async def _decide(
        request_id: uuid.UUID, body: Decision, caller: Caller, *, approve: bool
    ) -> JSONResponse:
        if not {"approver", "admin"} & set(caller.roles):
            raise ProblemError(403, "Only an approver may decide")
        async with runtime.transaction() as session:
            pending = await repository.get_request(session, request_id, tenant=caller.tenant)
            if pending is not None and pending.requester == caller.name:
                raise ProblemError(403, "Nobody decides on their own request")
            request = await repository.record_decision(
                session, request_id, tenant=caller.tenant, approver=caller.name
            )
            if request is None:
                await _refuse(
                    session,
                    request_id,
                    caller,
                    "No decision possible",
                    "The request is not awaiting approval, or was decided already.",
                )
            decision: Event
            if approve:
                decision = RequestApproved(
                    request_id=request.id,
                    catalog_item=request.catalog_item,
                    parameters=request.parameters,
                    requester=request.requester,
                    tenant=request.tenant,
                    operation="provision",
                    resource_id=request.resource_id,
                    approver=caller.name,
                    justification=body.justification,
                )
            else:
                decision = RequestDenied(
                    request_id=request.id, approver=caller.name, justification=body.justification
                )
            runtime.publish(session, decision)
        return JSONResponse(request.public(), status_code=202)

    @router.get("/resources")
    async def list_resources(caller: CallerDep) -> dict[str, Any]:
        async with runtime.session_factory() as session:
            resources = await repository.list_resources(session, tenant=caller.tenant)
        return {"items": [resource.public() for resource in resources]}

    @router.get("/resources/{resource_id}")
    async def get_resource(resource_id: uuid.UUID, caller: CallerDep) -> dict[str, Any]:
        async with runtime.session_factory() as session:
            resource = await repository.get_resource(session, resource_id, tenant=caller.tenant)
            if resource is None:
                raise ProblemError(404, "Resource not found")
            requests = await repository.requests_of_resource(session, resource_id)
        return resource.public(requests)

    @router.delete("/resources/{resource_id}", status_code=202)
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
                    _requester(caller),
                    resource.catalog_item,
                    parameters,
                    operation="deprovision",
                    resource_id=resource_id,
                )
        except ResourceNotActive as error:
            raise ProblemError(
                409, "Resource is not active", "Only an active resource can be removed."
            ) from error
        return _accepted(request)

    @router.post("/resources/{resource_id}/extend")
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
                raise ProblemError(
                    422,
                    "Invalid lease",
                    str(problem),
                    errors=[{"field": "expires_at", "message": str(problem)}],
                ) from problem
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

    @router.get("/resources/{resource_id}/credentials")
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
