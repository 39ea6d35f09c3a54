"""Routes for requests: submit (or plan), follow, cancel, approve or deny."""

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from functools import partial
from typing import Annotated, NoReturn

import httpx
from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from opentelemetry import trace
from sqlalchemy.ext.asyncio import AsyncSession

from apikeys import Caller
from apikeys.authorization import Action, documented
from catalog import Catalog
from events import ServiceRuntime
from events.contracts.requests import (
    CancellationRequested,
    CompensationRetryRequested,
    RequestStatus,
)
from events.http import ProblemError
from request_api import leases, planning, repository, status
from request_api.access import guarded_request
from request_api.api_common import (
    Decision,
    NewRequest,
    accepted,
    invalid,
    invalid_lease,
    item_problems,
    requester_of,
)
from request_api.approvals import repository as approval_stages
from request_api.approvals import workflow as approval_workflow
from request_api.models import ProvisioningRequest
from request_api.progress import ProgressMetrics
from request_api.schemas import (
    ETAG,
    IDEMPOTENT,
    LOCATION,
    CatalogItemView,
    CatalogPage,
    Plan,
    RequestView,
)
from request_api.submissions import submit, trace_attributes
from request_api.versions import IfMatch, etag, require_match


def create_router(
    runtime: ServiceRuntime,
    catalog: Catalog,
    allocator: httpx.AsyncClient,
    authenticate: Callable[[Request], Awaitable[Caller]],
    progress: ProgressMetrics,
) -> APIRouter:
    router = APIRouter(prefix="/v1")
    CallerDep = Annotated[Caller, Depends(authenticate)]

    @router.get("/catalog")
    async def list_catalog(_: CallerDep) -> CatalogPage:
        """What may be requested: each item with the JSON Schema of its parameters."""
        return CatalogPage(items=[CatalogItemView.of(item) for item in catalog.items.values()])

    @router.post(
        "/requests",
        status_code=202,
        response_model=RequestView,
        responses={
            202: {"description": "Accepted: follow it at `Location`", "headers": LOCATION},
            200: {"model": Plan, "description": "`dry_run=true`: the decision it would get"},
        },
        openapi_extra=IDEMPOTENT,
    )
    async def submit_request(
        body: NewRequest, caller: CallerDep, http: Request, dry_run: bool = False
    ) -> JSONResponse:
        """Accepts a request (202); with `dry_run=true`, answers at once (200) with the
        decision it would get, its quota and cost, and reserves nothing."""
        item, errors = item_problems(
            catalog, body.catalog_item, body.parameters, tenant=caller.tenant
        )
        if item is None:
            raise invalid("Unknown catalog item", errors)
        if errors:
            raise invalid("Invalid parameters", errors)
        if dry_run:
            answer = await planning.plan(
                catalog,
                item,
                body.parameters,
                roles=caller.roles,
                tenant=caller.tenant,
                authorization=http.headers["authorization"],
                allocator=allocator,
            )
            return JSONResponse(answer)
        try:
            expires_at = leases.initial_expiry(item, body.expires_at, now=datetime.now(UTC))
        except leases.LeaseProblem as problem:
            raise invalid_lease(problem) from problem
        async with runtime.tenant_transaction(caller.tenant) as session:
            request = await submit(
                runtime,
                session,
                requester_of(caller),
                item.name,
                body.parameters,
                operation="provision",
                resource_id=uuid.uuid4(),
                expires_at=expires_at,
            )
        # The root of the request's trace: found by its id like every span after it.
        trace.get_current_span().set_attributes(trace_attributes(request))
        return accepted(request)

    @router.get(
        "/requests/{request_id}",
        openapi_extra=documented(Action.READ),
        responses={200: {"description": "The request", "headers": ETAG}},
    )
    async def get_request(
        request_id: uuid.UUID, caller: CallerDep, response: Response
    ) -> RequestView:
        async with runtime.tenant_transaction(caller.tenant) as session:
            request = await guarded_request(session, request_id, caller, Action.READ)
        response.headers["ETag"] = etag(request.version)
        return RequestView.of(request)

    @router.post(
        "/requests/{request_id}/cancel",
        status_code=202,
        response_model=RequestView,
        responses={202: {"description": "Cancelling (or cancelled)", "headers": ETAG}},
        openapi_extra=documented(Action.CANCEL),
    )
    async def cancel_request(
        request_id: uuid.UUID, caller: CallerDep, if_match: IfMatch = None
    ) -> JSONResponse:
        """Stops the request; once anything was allocated or deployed, it is undone first.
        A cancelled request's reasons say who cancelled it, and when."""
        async with runtime.tenant_transaction(caller.tenant) as session:
            version = await repository.locked_version(
                session, ProvisioningRequest, request_id, tenant=caller.tenant
            )
            if version is None:
                raise ProblemError(404, "Request not found")
            await guarded_request(session, request_id, caller, Action.CANCEL)
            require_match(if_match, version)
            request = await repository.request_cancel(
                session, request_id, tenant=caller.tenant, by=caller.name
            )
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
            if request.status == RequestStatus.AWAITING_APPROVAL:
                # Nothing was held yet and no step will hear of it again: it ends here.
                await approval_workflow.withdraw(session, request_id, tenant=caller.tenant)
                await status.move(
                    session,
                    request_id,
                    RequestStatus.CANCELLED,
                    cause=CancellationRequested.type,
                    publish=partial(runtime.publish, session),
                    progress=progress,
                )
                await session.refresh(request)
        return JSONResponse(
            request.public(), status_code=202, headers={"ETag": etag(request.version)}
        )

    @router.post(
        "/requests/{request_id}/retry-compensation",
        status_code=202,
        response_model=RequestView,
        openapi_extra=documented(Action.RETRY_COMPENSATION),
    )
    async def retry_compensation(request_id: uuid.UUID, caller: CallerDep) -> JSONResponse:
        """After `compensation_failed` and whatever blocked it was fixed: undo again."""
        async with runtime.tenant_transaction(caller.tenant) as session:
            request = await guarded_request(session, request_id, caller, Action.RETRY_COMPENSATION)
            reopened = await status.move(
                session,
                request_id,
                RequestStatus.COMPENSATING,
                cause=CompensationRetryRequested.type,
                publish=partial(runtime.publish, session),
                progress=progress,
            )
            if reopened is None:
                await _refuse(
                    session,
                    request_id,
                    caller,
                    "Nothing to retry",
                    "Only a request whose compensation failed can be retried.",
                )
            await session.refresh(request)
            runtime.publish(
                session,
                CompensationRetryRequested(request_id=request_id, requested_by=caller.name),
            )
        return JSONResponse(request.public(), status_code=202)

    @router.post(
        "/requests/{request_id}/approve", status_code=202, openapi_extra=documented(Action.APPROVE)
    )
    async def approve_request(
        request_id: uuid.UUID, body: Decision, caller: CallerDep
    ) -> JSONResponse:
        return await _decide(request_id, body, caller, approve=True)

    @router.post(
        "/requests/{request_id}/deny", status_code=202, openapi_extra=documented(Action.APPROVE)
    )
    async def deny_request(
        request_id: uuid.UUID, body: Decision, caller: CallerDep
    ) -> JSONResponse:
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
        """Decides the request's current approval stage on the caller's behalf."""
        async with runtime.tenant_transaction(caller.tenant) as session:
            stage = await approval_stages.pending_stage_of_request(
                session, request_id, tenant=caller.tenant
            )
            if stage is None:
                await _refuse(
                    session,
                    request_id,
                    caller,
                    "No decision possible",
                    "The request is not awaiting approval, or was decided already.",
                )
            await approval_workflow.decide(
                session,
                catalog,
                partial(runtime.publish, session),
                stage,
                caller,
                approve=approve,
                justification=body.justification,
            )
            request = await repository.get_request(session, request_id, tenant=caller.tenant)
        assert request is not None  # its stage was found in the caller's tenant
        return JSONResponse(request.public(), status_code=202)

    return router
