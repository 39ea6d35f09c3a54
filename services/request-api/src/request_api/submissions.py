"""Filing a request: the one way requests enter the pipeline, for the API and the lease clock."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from opentelemetry.util.types import AttributeValue
from sqlalchemy.ext.asyncio import AsyncSession

from events import ServiceRuntime, tracing
from events.contracts.requests import RequestSubmitted
from request_api import repository
from request_api.models import ProvisioningRequest


@dataclass(frozen=True)
class Requester:
    name: str
    tenant: str
    roles: tuple[str, ...]


class ResourceNotActive(Exception):
    pass


async def submit(
    runtime: ServiceRuntime,
    session: AsyncSession,
    requester: Requester,
    catalog_item: str,
    parameters: dict[str, Any],
    *,
    operation: str,
    resource_id: uuid.UUID,
    expires_at: datetime | None = None,
    bundle_id: uuid.UUID | None = None,
    rotate_credentials: bool = False,
) -> ProvisioningRequest:
    """Record the request and stage `request.submitted`, in the caller's transaction."""
    with runtime.span("submit request") as span:
        request, submitted = await record(
            session,
            requester,
            catalog_item,
            parameters,
            operation=operation,
            resource_id=resource_id,
            expires_at=expires_at,
            bundle_id=bundle_id,
            rotate_credentials=rotate_credentials,
        )
        span.set_attributes(trace_attributes(request))
        runtime.publish(session, submitted)
    return request


def trace_attributes(request: ProvisioningRequest) -> dict[str, AttributeValue]:
    """What finds a request's spans: `request.id`, `tenant.id`, `catalog.item`."""
    facts = {"tenant": request.tenant, "catalog_item": request.catalog_item}
    return tracing.request_attributes(str(request.id), facts)


async def record(
    session: AsyncSession,
    requester: Requester,
    catalog_item: str,
    parameters: dict[str, Any],
    *,
    operation: str,
    resource_id: uuid.UUID,
    expires_at: datetime | None = None,
    bundle_id: uuid.UUID | None = None,
    rotate_credentials: bool = False,
) -> tuple[ProvisioningRequest, RequestSubmitted]:
    """Record the request; the caller publishes the returned event (from a route, or a
    handler's `ctx.emit`)."""
    if operation == "deprovision" and not await repository.start_retiring(
        session, resource_id, tenant=requester.tenant
    ):
        raise ResourceNotActive(resource_id)
    previous = None
    if operation == "modify":
        resource = await repository.get_resource(session, resource_id, tenant=requester.tenant)
        if resource is None or resource.state != "active":
            raise ResourceNotActive(resource_id)
        previous = resource.parameters
    request = await repository.add_request(
        session,
        request_id=uuid.uuid4(),
        catalog_item=catalog_item,
        parameters=parameters,
        requester=requester.name,
        tenant=requester.tenant,
        operation=operation,
        resource_id=resource_id,
        expires_at=expires_at,
        bundle_id=bundle_id,
        rotate_credentials=rotate_credentials,
    )
    submitted = RequestSubmitted(
        request_id=request.id,
        catalog_item=catalog_item,
        parameters=parameters,
        requester=requester.name,
        requester_roles=list(requester.roles),
        tenant=requester.tenant,
        operation=operation,
        resource_id=resource_id,
        rotate_credentials=rotate_credentials,
        previous_parameters=previous,
    )
    return request, submitted
