"""Every query of the request-api."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from request_api import lifecycle
from request_api.models import ProvisioningRequest, Resource


async def add_request(
    session: AsyncSession,
    *,
    request_id: uuid.UUID,
    catalog_item: str,
    parameters: dict[str, Any],
    requester: str,
) -> ProvisioningRequest:
    now = datetime.now(UTC)
    request = ProvisioningRequest(
        id=request_id,
        created_at=now,
        updated_at=now,
        catalog_item=catalog_item,
        parameters=parameters,
        requester=requester,
        status=lifecycle.SUBMITTED,
        reasons=[],
    )
    session.add(request)
    return request


async def get_request(session: AsyncSession, request_id: uuid.UUID) -> ProvisioningRequest | None:
    return await session.get(ProvisioningRequest, request_id)


async def move_request(
    session: AsyncSession,
    request_id: uuid.UUID,
    status: str,
    *,
    reasons: list[dict[str, Any]] | None = None,
    resource_id: uuid.UUID | None = None,
) -> bool:
    """Move the request to `status` unless it is already further along (one statement)."""
    changes: dict[str, Any] = {"status": status, "updated_at": func.now()}
    if reasons is not None:
        changes["reasons"] = reasons
    if resource_id is not None:
        changes["resource_id"] = resource_id
    moved = await session.execute(
        update(ProvisioningRequest)
        .where(
            ProvisioningRequest.id == request_id,
            ProvisioningRequest.status.in_(lifecycle.may_move_from(status)),
        )
        .values(**changes)
        # No ORM object of this row is loaded in a consumer's session: nothing to synchronise.
        .execution_options(synchronize_session=False)
    )
    return bool(moved.rowcount)  # type: ignore[attr-defined]


async def add_resource(session: AsyncSession, **columns: Any) -> None:
    await session.execute(insert(Resource).values(**columns).on_conflict_do_nothing())


async def get_resource(session: AsyncSession, resource_id: uuid.UUID) -> Resource | None:
    return await session.scalar(select(Resource).where(Resource.id == resource_id))
