"""Every query of approvals. Nothing here commits: the route or the clock owns the unit of work."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from request_api.approvals.models import PENDING, ApprovalDecision, ApprovalStageRow
from request_api.models import ProvisioningRequest
from request_api.search import pages
from request_api.search.pages import Position

# The inbox's order: newest stage first, then by id.
NEWEST_FIRST = pages.Sort("opened_at", descending=True)
_KEYSET = (ApprovalStageRow.opened_at.expression, ApprovalStageRow.id.expression)


def add_stage(session: AsyncSession, stage: ApprovalStageRow) -> ApprovalStageRow:
    session.add(stage)
    return stage


async def stage_for_update(
    session: AsyncSession, approval_id: uuid.UUID, *, tenant: str
) -> ApprovalStageRow | None:
    """The stage, locked: decisions on one stage are taken one after the other."""
    return await session.scalar(
        select(ApprovalStageRow)
        .where(ApprovalStageRow.id == approval_id, ApprovalStageRow.tenant == tenant)
        .with_for_update()
    )


async def get_stage(
    session: AsyncSession, approval_id: uuid.UUID, *, tenant: str
) -> ApprovalStageRow | None:
    return await session.scalar(
        select(ApprovalStageRow).where(
            ApprovalStageRow.id == approval_id, ApprovalStageRow.tenant == tenant
        )
    )


async def pending_stage_of_request(
    session: AsyncSession, request_id: uuid.UUID, *, tenant: str
) -> ApprovalStageRow | None:
    """The request's stage awaiting decisions, locked like `stage_for_update`."""
    return await session.scalar(
        select(ApprovalStageRow)
        .where(
            ApprovalStageRow.request_id == request_id,
            ApprovalStageRow.tenant == tenant,
            ApprovalStageRow.status == PENDING,
        )
        .with_for_update()
    )


async def stages_in(
    session: AsyncSession,
    *,
    tenant: str,
    status: str,
    not_requested_by: str,
    limit: int,
    after: Position | None = None,
) -> list[ApprovalStageRow]:
    """Stages of the tenant in `status`, newest first (after `after`, a keyset position),
    leaving out the caller's own requests. Pending ones only while their request still waits
    for approval."""
    query = select(ApprovalStageRow).where(
        ApprovalStageRow.tenant == tenant,
        ApprovalStageRow.status == status,
        ApprovalStageRow.requester != not_requested_by,
    )
    if after is not None:
        query = query.where(pages.after(after, NEWEST_FIRST, *_KEYSET))
    if status == PENDING:
        query = query.join(
            ProvisioningRequest, ProvisioningRequest.id == ApprovalStageRow.request_id
        ).where(*_still_awaiting())
    query = query.order_by(*pages.order(NEWEST_FIRST, *_KEYSET)).limit(limit)
    return list((await session.scalars(query)).all())


async def decisions_on(
    session: AsyncSession, approval_ids: Sequence[uuid.UUID]
) -> list[ApprovalDecision]:
    if not approval_ids:
        return []
    return list(
        (
            await session.scalars(
                select(ApprovalDecision)
                .where(ApprovalDecision.approval_id.in_(approval_ids))
                .order_by(ApprovalDecision.at, ApprovalDecision.id)
            )
        ).all()
    )


def add_decision(session: AsyncSession, decision: ApprovalDecision) -> ApprovalDecision:
    session.add(decision)
    return decision


async def request_still_awaiting(session: AsyncSession, request_id: uuid.UUID) -> bool:
    found = await session.scalar(
        select(ProvisioningRequest.id).where(
            ProvisioningRequest.id == request_id, *_still_awaiting()
        )
    )
    return found is not None


async def claim_due_stages(
    session: AsyncSession, *, now: datetime, limit: int = 100
) -> list[ApprovalStageRow]:
    """Pending stages past a deadline, claimed so that another replica's clock skips them."""
    return list(
        (
            await session.scalars(
                select(ApprovalStageRow)
                .where(
                    ApprovalStageRow.status == PENDING,
                    or_(
                        ApprovalStageRow.deny_at <= now,
                        (ApprovalStageRow.escalate_at <= now)
                        & ApprovalStageRow.escalated_at.is_(None),
                    ),
                )
                .order_by(ApprovalStageRow.opened_at)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        ).all()
    )


def _still_awaiting() -> tuple[ColumnElement[bool], ...]:
    return (
        ProvisioningRequest.status == "awaiting_approval",
        ProvisioningRequest.cancel_requested_at.is_(None),
    )
