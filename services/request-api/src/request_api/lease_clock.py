"""The lease clock: announces leases that end soon and deprovisions those that ended."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func
from sqlalchemy.ext.asyncio import AsyncSession

from events import ServiceRuntime
from events.contracts.requests import LeaseExpiring
from request_api import repository
from request_api.submissions import Requester, submit

EXPIRY = "lease-expiry"


async def tick(runtime: ServiceRuntime, session: AsyncSession, *, warn_before: timedelta) -> None:
    for resource in await repository.leases_to_announce(session, warn_before=warn_before):
        assert resource.expires_at is not None
        resource.lease_warned_at = func.now()
        runtime.publish(
            session,
            LeaseExpiring(
                request_id=resource.request_id,
                resource_id=resource.id,
                expires_at=resource.expires_at,
            ),
        )
    for resource in await repository.expired_leases(session):
        original = await repository.get_request(
            session, resource.request_id, tenant=resource.tenant
        )
        await submit(
            runtime,
            session,
            Requester(name=EXPIRY, tenant=resource.tenant, roles=("admin",)),
            resource.catalog_item,
            original.parameters if original else {},
            operation="deprovision",
            resource_id=resource.id,
        )
