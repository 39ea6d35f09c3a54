"""Reactions of the validator to events."""

from __future__ import annotations

from dataclasses import dataclass

from catalog import Catalog, policy
from events import HandlerContext, Router
from events.contracts.requests import RequestSubmitted
from events.contracts.validation import (
    Problem,
    RequestRejected,
    RequestValidated,
    ValidationFailed,
)

router = Router()


@dataclass(frozen=True)
class Deps:
    catalog: Catalog


def validation_failed(event: RequestSubmitted, reason: str) -> ValidationFailed:
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
    else:
        facts = event.model_dump(exclude={"type", "topic", "version", "requester_roles"})
        ctx.emit(RequestValidated(**facts))
