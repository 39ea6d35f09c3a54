"""Reactions of the validator to events."""

from __future__ import annotations

from dataclasses import dataclass

from catalog import Catalog
from events import HandlerContext, Router
from events.contracts.requests import RequestSubmitted
from events.contracts.validation import RequestRejected, RequestValidated, ValidationFailed
from validator import rules

router = Router()


@dataclass(frozen=True)
class Deps:
    catalog: Catalog


def validation_failed(event: RequestSubmitted, reason: str) -> ValidationFailed:
    return ValidationFailed(request_id=event.request_id, reason=reason)


@router.on(RequestSubmitted, on_failure=validation_failed)
async def validate_request(event: RequestSubmitted, ctx: HandlerContext[Deps]) -> None:
    item = ctx.deps.catalog.get(event.catalog_item)
    problems = rules.check(item, event.catalog_item, event.parameters)
    if problems:
        ctx.emit(RequestRejected(request_id=event.request_id, reasons=problems))
    else:
        ctx.emit(
            RequestValidated(
                request_id=event.request_id,
                catalog_item=event.catalog_item,
                parameters=event.parameters,
                requester=event.requester,
            )
        )
