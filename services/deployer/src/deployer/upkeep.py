"""What the deployer does on its own clock: re-verify active resources for drift, and delete
deprovisioned ones whose retention period has ended. Each run claims its rows (SKIP LOCKED),
so replicas share the work."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from deployer import repository
from deployer.drivers import Drivers, TargetUnavailable
from deployer.handlers import placement_of_managed, record_check
from events import PermanentError, ServiceRuntime
from events.contracts.deployment import ResourcePurged

log = logging.getLogger(__name__)

# Small batches: the claimed rows stay locked while their targets answer.
BATCH = 20


def drift_check(
    runtime: ServiceRuntime, drivers: Drivers, *, interval_s: float
) -> Callable[[AsyncSession], Awaitable[None]]:
    async def check(session: AsyncSession) -> None:
        now = datetime.now(UTC)
        due = await repository.claim_due_for_check(
            session, checked_before=now - timedelta(seconds=interval_s), limit=BATCH
        )
        for resource in due:
            try:
                driver = drivers.get(resource.driver, resource.server_id)
                differences = await driver.verify(
                    placement_of_managed(resource), resource.configuration, None
                )
            except (TargetUnavailable, PermanentError) as error:
                # Unreachable is not drift: the next run asks again.
                log.warning("drift check of %s skipped: %s", resource.resource_id, error)
                continue
            for event in record_check(resource, differences):
                runtime.publish(session, event)

    return check


def purge_retained(
    runtime: ServiceRuntime, drivers: Drivers
) -> Callable[[AsyncSession], Awaitable[None]]:
    async def purge(session: AsyncSession) -> None:
        due = await repository.claim_due_for_deletion(session, now=datetime.now(UTC), limit=BATCH)
        for resource in due:
            try:
                driver = drivers.get(resource.driver, resource.server_id)
                await driver.remove(placement_of_managed(resource), resource.configuration)
            except (TargetUnavailable, PermanentError) as error:
                log.warning("deletion of %s postponed: %s", resource.resource_id, error)
                continue
            resource.status = "removed"
            runtime.publish(
                session,
                ResourcePurged(
                    request_id=resource.request_id,
                    resource_id=resource.resource_id,
                    server_id=resource.server_id,
                ),
            )

    return purge
