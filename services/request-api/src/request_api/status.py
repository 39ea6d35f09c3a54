"""The one doorway through which a request's status moves.

Every move, whoever makes it (a handler following the pipeline, the cancel route, an
operator's retry), comes here: it is checked against the lifecycle table for the event that
causes it, made in the database, measured, and announced (`request.status_changed`) in the
same transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from events import Event
from events.contracts.lifecycle import MOVES
from events.contracts.requests import RequestStatus, RequestStatusChanged
from request_api import repository
from request_api.progress import ProgressMetrics, Transition

# Stages an event in the caller's transaction (`ctx.emit`, or the runtime's `publish`).
Publish = Callable[[Event], Any]


class NotInTheLifecycle(ValueError):
    """A move the lifecycle table does not allow its cause: a bug, not bad input."""


async def move(
    session: AsyncSession,
    request_id: uuid.UUID,
    to: RequestStatus,
    *,
    cause: str,
    publish: Publish,
    progress: ProgressMetrics,
    reason: dict[str, Any] | None = None,
    reasons: list[dict[str, Any]] | None = None,
    resource_id: uuid.UUID | None = None,
) -> Transition | None:
    """Move the request to `to` because of the event `cause` (its type), unless it is
    already further along; None if it did not move. Reasons are recorded either way: a late
    failure still explains a rollback."""
    allowed = MOVES.get(cause)
    if allowed is None or to not in allowed.ends:
        raise NotInTheLifecycle(f"{cause} does not move a request to {to}")
    row = await repository.move_request(
        session,
        request_id,
        to,
        cause=cause,
        reason=reason,
        reasons=reasons,
        resource_id=resource_id,
    )
    if row is None:
        return None
    moved = Transition(
        request_id=request_id,
        tenant=row.tenant,
        catalog_item=row.catalog_item,
        operation=row.operation,
        old=RequestStatus(row.old),
        new=to,
        submitted_at=row.created_at,
        entered_old_at=row.entered_old_at,
        at=row.status_changed_at,
    )
    progress.moved(session, moved)
    publish(
        RequestStatusChanged(
            request_id=request_id,
            tenant=moved.tenant,
            catalog_item=moved.catalog_item,
            operation=moved.operation,
            old=moved.old,
            new=moved.new,
            cause=cause,
            at=moved.at,
        )
    )
    return moved
