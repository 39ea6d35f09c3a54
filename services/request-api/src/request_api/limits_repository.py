"""The one query the limits need: a tenant's requests that have not ended."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from events.contracts.lifecycle import TERMINAL
from request_api.models import ProvisioningRequest


async def count_in_flight(session: AsyncSession, *, tenant: str) -> int:
    # NOT IN the terminal statuses: a status added later counts as in flight until it is
    # declared terminal.
    query = select(func.count()).where(
        ProvisioningRequest.tenant == tenant, ProvisioningRequest.status.not_in(TERMINAL)
    )
    return int(await session.scalar(query) or 0)
