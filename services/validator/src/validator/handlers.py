"""Reactions of the validator to events."""

from __future__ import annotations

from dataclasses import dataclass

from catalog import Catalog, policy
from events import Event, HandlerContext, Router
from events.contracts.requests import RequestApproved, RequestDenied, RequestSubmitted
from events.contracts.validation import (
    ApprovalRequired,
    Problem,
    RequestRejected,
    RequestValidated,
    ValidationFailed,
)

router = Router()


@dataclass(frozen=True)
class Deps:
    catalog: Catalog


def validation_failed(event: Event, reason: str) -> ValidationFailed:
    return ValidationFailed(request_id=event.request_id, reason=reason, code="internal")


@router.on(RequestSubmitted, on_failure=validation_failed)
async def validate_request(event: RequestSubmitted, ctx: HandlerContext[Deps]) -> None:
    item = ctx.deps.catalog.get(event.catalog_item)
    found = policy.check(
        item,
        event.catalog_item,
        event.parameters,
        roles=event.requester_roles,
        operation=event.operation,
        tenant=event.tenant,
    )
    if found:
        problems = [Problem(field=p.field, message=p.message, code=p.code) for p in found]
        ctx.emit(
            RequestRejected(
                request_id=event.request_id,
                reasons=problems,
                policy_version=ctx.deps.catalog.version,
            )
        )
        return
    facts = event.model_dump(
        exclude={"type", "topic", "version", "requester_roles", "previous_parameters"}
    )
    # A modify is decided like a provision, but only on what it raises above the resource's.
    needs_approval = (
        policy.approval_reasons(
            item, event.parameters, tenant=event.tenant, previous=event.previous_parameters
        )
        if item is not None and event.operation != "deprovision"
        else []
    )
    if needs_approval:
        reasons = [Problem(field=p.field, message=p.message, code=p.code) for p in needs_approval]
        ctx.emit(ApprovalRequired(**facts, reasons=reasons))
    else:
        ctx.emit(RequestValidated(**facts))


@router.on(RequestApproved, on_failure=validation_failed)
async def approved(event: RequestApproved, ctx: HandlerContext[Deps]) -> None:
    facts = event.model_dump(exclude={"type", "topic", "version", "approver", "justification"})
    ctx.emit(RequestValidated(**facts))


@router.on(RequestDenied, on_failure=validation_failed)
async def denied(event: RequestDenied, ctx: HandlerContext[Deps]) -> None:
    reason = Problem(message=f"denied by {event.approver}: {event.justification}", code="denied")
    ctx.emit(
        RequestRejected(
            request_id=event.request_id, reasons=[reason], policy_version=ctx.deps.catalog.version
        )
    )
