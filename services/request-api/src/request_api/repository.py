"""Every query of the request-api."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
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
    request = await session.get(ProvisioningRequest, request_id, with_for_update=True)
    if request is None or not lifecycle.may_move(request.status, status):
        return False
    request.status = status
    if reasons is not None:
        request.reasons = reasons
    if resource_id is not None:
        request.resource_id = resource_id
    await session.flush()
    return True


async def add_resource(session: AsyncSession, **columns: Any) -> None:
    await session.execute(insert(Resource).values(**columns).on_conflict_do_nothing())


async def get_resource(session: AsyncSession, resource_id: uuid.UUID) -> Resource | None:
    return await session.scalar(select(Resource).where(Resource.id == resource_id))
