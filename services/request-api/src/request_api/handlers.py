"""The request-api follows the pipeline's events to keep each request's status current."""

from __future__ import annotations

import uuid

from events import HandlerContext, Router
from events.contracts.allocation import AllocationFailed, ResourceAllocated
from events.contracts.configuration import ConfigurationFailed, ResourceConfigured
from events.contracts.deployment import ProvisioningCompleted, ProvisioningFailed
from events.contracts.validation import RequestRejected, RequestValidated, ValidationFailed
from request_api import repository

router = Router()

Context = HandlerContext[None]


@router.on(RequestValidated)
async def on_validated(event: RequestValidated, ctx: Context) -> None:
    await repository.move_request(ctx.session, event.request_id, "validated")


@router.on(RequestRejected)
async def on_rejected(event: RequestRejected, ctx: Context) -> None:
    reasons = [reason.model_dump() for reason in event.reasons]
    await repository.move_request(ctx.session, event.request_id, "rejected", reasons=reasons)


@router.on(ResourceAllocated)
async def on_allocated(event: ResourceAllocated, ctx: Context) -> None:
    await repository.move_request(ctx.session, event.request_id, "allocated")


@router.on(ResourceConfigured)
async def on_configured(event: ResourceConfigured, ctx: Context) -> None:
    await repository.move_request(ctx.session, event.request_id, "configured")


@router.on(ProvisioningCompleted)
async def on_completed(event: ProvisioningCompleted, ctx: Context) -> None:
    await repository.add_resource(
        ctx.session,
        id=event.resource_id,
        request_id=event.request_id,
        catalog_item=event.catalog_item,
        owner=event.requester,
        state="active",
        server_id=event.server_id,
        outputs=event.outputs,
        credentials_ref=event.credentials_ref,
    )
    await repository.move_request(
        ctx.session, event.request_id, "completed", resource_id=event.resource_id
    )


@router.on(ValidationFailed)
async def on_validation_failed(event: ValidationFailed, ctx: Context) -> None:
    await _fail(ctx, event.request_id, "validation", event.reason)


@router.on(AllocationFailed)
async def on_allocation_failed(event: AllocationFailed, ctx: Context) -> None:
    await _fail(ctx, event.request_id, "allocation", event.reason)


@router.on(ConfigurationFailed)
async def on_configuration_failed(event: ConfigurationFailed, ctx: Context) -> None:
    await _fail(ctx, event.request_id, "configuration", event.reason)


@router.on(ProvisioningFailed)
async def on_provisioning_failed(event: ProvisioningFailed, ctx: Context) -> None:
    await _fail(ctx, event.request_id, "deployment", event.reason)


async def _fail(ctx: Context, request_id: uuid.UUID, step: str, reason: str) -> None:
    reasons = [{"step": step, "message": reason}]
    await repository.move_request(ctx.session, request_id, "failed", reasons=reasons)
