"""The request-api follows the pipeline's events to keep each request's status current."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from catalog import Catalog
from events import Event, HandlerContext, Router
from events.contracts import lifecycle
from events.contracts.allocation import (
    AllocationBackordered,
    AllocationFailed,
    AllocationReleased,
    ResourceAllocated,
)
from events.contracts.configuration import ConfigurationFailed, ResourceConfigured
from events.contracts.deployment import (
    CompensationFailed,
    DriftDetected,
    DriftResolved,
    ProvisioningCompleted,
    ProvisioningFailed,
    ResourceDeployed,
    ResourceVerified,
)
from events.contracts.requests import CancellationRequested, RequestStatus
from events.contracts.validation import (
    ApprovalRequired,
    RequestRejected,
    RequestValidated,
    ValidationFailed,
)
from request_api import bundles, repository, status, submissions
from request_api.approvals import workflow as approvals
from request_api.progress import ProgressMetrics

router = Router()
S = RequestStatus


@dataclass(frozen=True)
class Deps:
    catalog: Catalog
    progress: ProgressMetrics
    # Caps every approval wait (test stacks watch days of escalation in seconds).
    approval_time_cap_s: float | None = None


Context = HandlerContext[Deps]


@router.on(RequestValidated)
async def on_validated(event: RequestValidated, ctx: Context) -> None:
    await _move(ctx, event, S.VALIDATED)


@router.on(ApprovalRequired)
async def on_awaiting_approval(event: ApprovalRequired, ctx: Context) -> None:
    if await _move(ctx, event, S.AWAITING_APPROVAL):
        approvals.open_first_stage(
            ctx.session, ctx.deps.catalog, event, cap_s=ctx.deps.approval_time_cap_s
        )


@router.on(RequestRejected)
async def on_rejected(event: RequestRejected, ctx: Context) -> None:
    reasons = [
        {"step": "validation", **problem.model_dump(), "policy": event.policy_version}
        for problem in event.reasons
    ]
    await _move(ctx, event, S.REJECTED, reasons=reasons)
    await repository.settle_resource_of(ctx.session, event.request_id, retired=False)
    await undo_failed_bundle(ctx, event.request_id)


@router.on(AllocationBackordered)
async def on_backordered(event: AllocationBackordered, ctx: Context) -> None:
    await _move(ctx, event, S.BACKORDERED)


@router.on(ResourceAllocated)
async def on_allocated(event: ResourceAllocated, ctx: Context) -> None:
    await _move(ctx, event, S.ALLOCATED)


@router.on(ResourceConfigured)
async def on_configured(event: ResourceConfigured, ctx: Context) -> None:
    await _move(ctx, event, S.CONFIGURED)


@router.on(ResourceDeployed)
async def on_deployed(event: ResourceDeployed, ctx: Context) -> None:
    await _move(ctx, event, S.DEPLOYED)


@router.on(ResourceVerified)
async def on_verified(event: ResourceVerified, ctx: Context) -> None:
    await _move(ctx, event, S.VERIFIED)


@router.on(ProvisioningCompleted)
async def on_completed(event: ProvisioningCompleted, ctx: Context) -> None:
    if event.operation == "deprovision":
        await repository.settle_resource_of(ctx.session, event.request_id, retired=True)
    elif event.operation == "modify":
        await repository.update_resource(
            ctx.session, event.resource_id, parameters=event.parameters, outputs=event.outputs
        )
    elif await repository.cancel_requested(ctx.session, event.request_id):
        # Cancelled in time: the deployer removes what it just created.
        await _move(ctx, event, S.COMPENSATING)
        return
    else:
        item = ctx.deps.catalog.get(event.catalog_item)
        await repository.add_resource(
            ctx.session,
            id=event.resource_id,
            request_id=event.request_id,
            catalog_item=event.catalog_item,
            owner=event.owner,
            tenant=event.tenant,
            state="active",
            parameters=event.parameters,
            server_id=event.server_id,
            outputs=event.outputs,
            credentials_ref=event.credentials_ref or "",
            monthly_cost=item.monthly_cost if item else 0.0,
            expires_at=await repository.expiry_of_request(ctx.session, event.request_id),
        )
    await _move(ctx, event, S.COMPLETED, resource_id=event.resource_id)
    await undo_failed_bundle(ctx, event.request_id)


@router.on(DriftDetected)
async def on_drift(event: DriftDetected, ctx: Context) -> None:
    await repository.set_drift(ctx.session, event.resource_id, event.differences)


@router.on(DriftResolved)
async def on_drift_resolved(event: DriftResolved, ctx: Context) -> None:
    await repository.set_drift(ctx.session, event.resource_id, [])


@router.on(ValidationFailed)
async def on_validation_failed(event: ValidationFailed, ctx: Context) -> None:
    await _failed(ctx, event, "validation", event.reason, event.code)


@router.on(AllocationFailed)
async def on_allocation_failed(event: AllocationFailed, ctx: Context) -> None:
    await _failed(ctx, event, "allocation", event.reason, event.code)


@router.on(ConfigurationFailed)
async def on_configuration_failed(event: ConfigurationFailed, ctx: Context) -> None:
    reason = _reason("configuration", event.reason, event.code)
    await _move(ctx, event, S.COMPENSATING, reason=reason)


@router.on(ProvisioningFailed)
async def on_provisioning_failed(event: ProvisioningFailed, ctx: Context) -> None:
    if event.operation != "provision":
        # The resource is still there: nothing to undo.
        await _failed(ctx, event, "deployment", event.reason, event.code)
        return
    reason = _reason(event.step, event.reason, event.code)
    await _move(ctx, event, S.COMPENSATING, reason=reason)


@router.on(AllocationReleased)
async def on_released(event: AllocationReleased, ctx: Context) -> None:
    if event.operation == "provision":
        await _move(ctx, event, await _end_of_undo(ctx, event))
        await undo_failed_bundle(ctx, event.request_id)


@router.on(CompensationFailed)
async def on_compensation_failed(event: CompensationFailed, ctx: Context) -> None:
    reason = _reason(f"compensation of {event.step}", event.reason, "compensation_failed")
    await _move(ctx, event, S.COMPENSATION_FAILED, reason=reason)
    await undo_failed_bundle(ctx, event.request_id)


async def _move(ctx: Context, event: Event, to: RequestStatus, **changes: Any) -> bool:
    """Move the event's request through the doorway, the event its cause."""
    moved = await status.move(
        ctx.session,
        event.request_id,
        to,
        cause=event.type,
        publish=ctx.emit,
        progress=ctx.deps.progress,
        **changes,
    )
    return moved is not None


async def _end_of_undo(ctx: Context, event: AllocationReleased) -> RequestStatus:
    cancelled = await repository.cancel_requested(ctx.session, event.request_id)
    return S.CANCELLED if cancelled else S.ROLLED_BACK


async def _failed(ctx: Context, event: Event, step: str, message: str, code: str | None) -> None:
    """A step refused a request it held nothing for: it ends as the lifecycle says."""
    request_id = event.request_id
    cancelled = await repository.cancel_requested(ctx.session, request_id)
    to = lifecycle.end_of_refusal(code, cancel_requested=cancelled)
    await _move(ctx, event, to, reason=_reason(step, message, code))
    await repository.settle_resource_of(ctx.session, request_id, retired=False)
    await undo_failed_bundle(ctx, request_id)


def _reason(step: str, message: str, code: str | None) -> dict[str, str | None]:
    return {"step": step, "code": code or "internal", "message": message}


async def undo_failed_bundle(ctx: Context, request_id: uuid.UUID) -> None:
    """All or nothing: once an item of the bundle failed, cancel the others still in flight
    and deprovision those that completed. Safe to repeat: each step happens once."""
    bundle = await repository.bundle_of(ctx.session, request_id)
    if bundle is None or not bundle.all_or_nothing:
        return
    members = await repository.bundle_members(ctx.session, bundle.id)
    if not bundles.must_undo([m.status for m in members], all_or_nothing=True):
        return
    in_flight = [
        m for m in members if m.status not in lifecycle.TERMINAL and m.cancel_requested_at is None
    ]
    for member in in_flight:
        by = "the platform (another item of its all-or-nothing bundle failed)"
        # A member another transaction is moving is left alone (waiting could deadlock with
        # it over the bundle's lock): when it ends, it finds the failure here itself.
        cancelled = await repository.request_cancel(
            ctx.session, member.id, tenant=member.tenant, by=by, unless_locked=True
        )
        if cancelled:
            reason = "another item of its all-or-nothing bundle failed"
            ctx.emit(CancellationRequested(request_id=member.id, reason=reason))
    completed = [m.id for m in members if m.status == S.COMPLETED]
    for resource in await repository.live_resources(ctx.session, completed):
        if resource.state != "active":
            continue
        original = next(m for m in members if m.id == resource.request_id)
        try:
            _, submitted = await submissions.record(
                ctx.session,
                submissions.Requester(
                    name="bundle-rollback", tenant=resource.tenant, roles=("admin",)
                ),
                resource.catalog_item,
                original.parameters,
                operation="deprovision",
                resource_id=resource.id,
            )
        except submissions.ResourceNotActive:
            continue  # another item's failure filed its removal first
        ctx.emit(submitted)
