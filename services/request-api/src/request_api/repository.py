"""Every query of the request-api."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, literal, select, update
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.ext.asyncio import AsyncSession

from events.contracts import lifecycle
from events.contracts.requests import RequestStatus
from request_api.models import Bundle, ProvisioningRequest, Resource
from request_api.schemas import Reason


async def add_request(
    session: AsyncSession,
    *,
    request_id: uuid.UUID,
    catalog_item: str,
    parameters: dict[str, Any],
    requester: str,
    tenant: str,
    operation: str = "provision",
    resource_id: uuid.UUID | None = None,
    expires_at: datetime | None = None,
    bundle_id: uuid.UUID | None = None,
    rotate_credentials: bool = False,
) -> ProvisioningRequest:
    now = datetime.now(UTC)
    request = ProvisioningRequest(
        id=request_id,
        created_at=now,
        updated_at=now,
        catalog_item=catalog_item,
        parameters=parameters,
        requester=requester,
        tenant=tenant,
        operation=operation,
        resource_id=resource_id,
        expires_at=expires_at,
        bundle_id=bundle_id,
        rotate_credentials=rotate_credentials,
        status=RequestStatus.SUBMITTED,
        status_changed_at=now,
        reasons=[],
    )
    session.add(request)
    return request


async def get_request(
    session: AsyncSession, request_id: uuid.UUID, *, tenant: str
) -> ProvisioningRequest | None:
    return await session.scalar(
        select(ProvisioningRequest).where(
            ProvisioningRequest.id == request_id, ProvisioningRequest.tenant == tenant
        )
    )


@dataclass(frozen=True)
class MovedRow:
    """What a status move found and left in the request's row."""

    tenant: str
    catalog_item: str
    operation: str
    old: str
    created_at: datetime
    entered_old_at: datetime
    status_changed_at: datetime


async def move_request(
    session: AsyncSession,
    request_id: uuid.UUID,
    status: str,
    *,
    cause: str,
    reason: dict[str, Any] | None = None,
    reasons: list[dict[str, Any]] | None = None,
    resource_id: uuid.UUID | None = None,
) -> MovedRow | None:
    """The query of `status.move` (the only caller): move the request to `status` if the
    lifecycle lets `cause` move it from where it is; None if it did not move. Reasons are
    added either way."""
    # Stored as the API shows them, so the journal's copy and the API's answer are alike.
    added = [stored_reason(r) for r in (*([reason] if reason else []), *(reasons or []))]
    if added:
        await session.execute(
            update(ProvisioningRequest)
            .where(ProvisioningRequest.id == request_id)
            .values(reasons=ProvisioningRequest.reasons.op("||")(literal(added, JSONB)))
            .execution_options(synchronize_session=False)
        )
    # Locked, so that the status it leaves, and since when, are those it really left.
    before = (
        await session.execute(
            select(
                ProvisioningRequest.status,
                ProvisioningRequest.status_changed_at,
                ProvisioningRequest.cancelled_by,
                ProvisioningRequest.cancel_requested_at,
            )
            .where(
                ProvisioningRequest.id == request_id,
                ProvisioningRequest.status.in_(lifecycle.may_move_from(status, cause=cause)),
            )
            .with_for_update()
        )
    ).one_or_none()
    if before is None:
        return None
    changes: dict[str, Any] = {
        "status": status,
        "status_changed_at": func.statement_timestamp(),
        "updated_at": func.now(),
    }
    if resource_id is not None:
        changes["resource_id"] = resource_id
    if status == RequestStatus.CANCELLED and before.cancel_requested_at is not None:
        # Who cancelled it, and when: the reason a reader of a cancelled request looks for.
        said = stored_reason(cancel_reason(before.cancelled_by, before.cancel_requested_at))
        changes["reasons"] = ProvisioningRequest.reasons.op("||")(literal([said], JSONB))
    after = (
        await session.execute(
            update(ProvisioningRequest)
            .where(ProvisioningRequest.id == request_id)
            .values(**changes)
            .returning(
                ProvisioningRequest.tenant,
                ProvisioningRequest.catalog_item,
                ProvisioningRequest.operation,
                ProvisioningRequest.created_at,
                ProvisioningRequest.status_changed_at,
            )
            # No ORM object of this row is loaded in a consumer's session: nothing to
            # synchronise.
            .execution_options(synchronize_session=False)
        )
    ).one()
    return MovedRow(
        tenant=after.tenant,
        catalog_item=after.catalog_item,
        operation=after.operation,
        old=before.status,
        created_at=after.created_at,
        entered_old_at=before.status_changed_at,
        status_changed_at=after.status_changed_at,
    )


def stored_reason(reason: dict[str, Any]) -> dict[str, Any]:
    """A reason with every field a reader of the API finds (an absent `field` is null)."""
    return Reason.model_validate(reason).model_dump()


def cancel_reason(by: str | None, at: datetime) -> dict[str, str | None]:
    """The reason a cancelled request carries: who cancelled it, and when."""
    who = by or "the platform"
    return {
        "step": "cancel",
        "code": "cancelled",
        "message": f"cancelled by {who} at {at.isoformat()}",
        "by": who,
        "at": at.isoformat(),
    }


async def stuck_requests(session: AsyncSession, *, longer_than: timedelta) -> dict[str, int]:
    """How many requests have been in each status of the way longer than `longer_than`."""
    rows = await session.execute(
        select(ProvisioningRequest.status, func.count())
        .where(
            ProvisioningRequest.status.in_(lifecycle.IN_FLIGHT),
            ProvisioningRequest.status_changed_at < func.now() - longer_than,
        )
        .group_by(ProvisioningRequest.status)
    )
    return {status: count for status, count in rows.tuples()}


async def request_cancel(
    session: AsyncSession,
    request_id: uuid.UUID,
    *,
    tenant: str,
    by: str,
    unless_locked: bool = False,
) -> ProvisioningRequest | None:
    """Flag the request cancelled unless it has ended; None if it cannot be cancelled (or,
    `unless_locked`, if another transaction is moving it right now)."""
    target = (
        select(ProvisioningRequest.id)
        .where(ProvisioningRequest.id == request_id)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
        if unless_locked
        else literal(request_id)
    )
    return await session.scalar(
        update(ProvisioningRequest)
        .where(
            ProvisioningRequest.id == target,
            ProvisioningRequest.tenant == tenant,
            ProvisioningRequest.operation == "provision",
            ProvisioningRequest.cancel_requested_at.is_(None),
            ProvisioningRequest.status.not_in(lifecycle.TERMINAL),
        )
        .values(cancel_requested_at=func.now(), cancelled_by=by, updated_at=func.now())
        .returning(ProvisioningRequest)
        .execution_options(synchronize_session=False)
    )


async def cancel_requested(session: AsyncSession, request_id: uuid.UUID) -> bool:
    """Read under a row lock, so a cancel cannot slip in between reading and moving."""
    flagged = await session.scalar(
        select(ProvisioningRequest.cancel_requested_at)
        .where(ProvisioningRequest.id == request_id)
        .with_for_update()
    )
    return flagged is not None


async def add_resource(session: AsyncSession, **columns: Any) -> None:
    await session.execute(insert(Resource).values(**columns).on_conflict_do_nothing())


async def update_resource(session: AsyncSession, resource_id: uuid.UUID, **values: Any) -> None:
    await session.execute(
        update(Resource)
        .where(Resource.id == resource_id)
        .values(**values)
        .execution_options(synchronize_session=False)
    )


async def set_drift(session: AsyncSession, resource_id: uuid.UUID, differences: list[str]) -> None:
    detected_at = func.now() if differences else None
    await update_resource(session, resource_id, drift=differences, drift_detected_at=detected_at)


async def resources_of_owner(session: AsyncSession, owner: str, *, tenant: str) -> list[Resource]:
    return list(
        (
            await session.scalars(
                select(Resource)
                .where(Resource.owner == owner, Resource.tenant == tenant)
                .order_by(Resource.created_at)
            )
        ).all()
    )


async def get_resource(
    session: AsyncSession, resource_id: uuid.UUID, *, tenant: str
) -> Resource | None:
    return await session.scalar(
        select(Resource).where(Resource.id == resource_id, Resource.tenant == tenant)
    )


async def requests_of_resource(
    session: AsyncSession, resource_id: uuid.UUID
) -> list[ProvisioningRequest]:
    return list(
        (
            await session.scalars(
                select(ProvisioningRequest)
                .where(ProvisioningRequest.resource_id == resource_id)
                .order_by(ProvisioningRequest.created_at)
            )
        ).all()
    )


async def start_retiring(session: AsyncSession, resource_id: uuid.UUID, *, tenant: str) -> bool:
    """Only an active resource can be deprovisioned, and only once at a time."""
    moved = await session.execute(
        update(Resource)
        .where(Resource.id == resource_id, Resource.tenant == tenant, Resource.state == "active")
        .values(state="retiring")
        .execution_options(synchronize_session=False)
    )
    return bool(moved.rowcount)  # type: ignore[attr-defined]


async def settle_resource_of(
    session: AsyncSession, request_id: uuid.UUID, *, retired: bool
) -> None:
    """A deprovision ended: retired if it completed, active again if it did not."""
    deprovision = (
        select(ProvisioningRequest.resource_id)
        .where(ProvisioningRequest.id == request_id, ProvisioningRequest.operation == "deprovision")
        .scalar_subquery()
    )
    values: dict[str, Any] = (
        {"state": "retired", "retired_at": func.now()} if retired else {"state": "active"}
    )
    await session.execute(
        update(Resource)
        .where(Resource.id == deprovision, Resource.state == "retiring")
        .values(**values)
        .execution_options(synchronize_session=False)
    )


async def expiry_of_request(session: AsyncSession, request_id: uuid.UUID) -> datetime | None:
    return await session.scalar(
        select(ProvisioningRequest.expires_at).where(ProvisioningRequest.id == request_id)
    )


async def leases_to_announce(
    session: AsyncSession, *, warn_before: timedelta, limit: int = 100
) -> list[Resource]:
    """Active leases ending within `warn_before`, not yet announced; claimed, so that two
    replicas never announce one twice."""
    return list(
        (
            await session.scalars(
                select(Resource)
                .where(
                    Resource.state == "active",
                    Resource.lease_warned_at.is_(None),
                    Resource.expires_at <= func.now() + warn_before,
                )
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        ).all()
    )


async def expired_leases(session: AsyncSession, *, limit: int = 50) -> list[Resource]:
    return list(
        (
            await session.scalars(
                select(Resource)
                .where(Resource.state == "active", Resource.expires_at <= func.now())
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        ).all()
    )


async def add_bundle(
    session: AsyncSession, *, tenant: str, requester: str, all_or_nothing: bool
) -> Bundle:
    bundle = Bundle(
        id=uuid.uuid4(), tenant=tenant, requester=requester, all_or_nothing=all_or_nothing
    )
    session.add(bundle)
    await session.flush()
    return bundle


async def get_bundle(session: AsyncSession, bundle_id: uuid.UUID, *, tenant: str) -> Bundle | None:
    return await session.scalar(
        select(Bundle).where(Bundle.id == bundle_id, Bundle.tenant == tenant)
    )


async def bundle_of(session: AsyncSession, request_id: uuid.UUID) -> Bundle | None:
    """The request's bundle, locked: two of its items ending at once decide in turn, so the
    later sees the earlier's end (otherwise each sees the other still in flight)."""
    return await session.scalar(
        select(Bundle)
        .join(ProvisioningRequest, ProvisioningRequest.bundle_id == Bundle.id)
        .where(ProvisioningRequest.id == request_id)
        .with_for_update(of=Bundle)
    )


async def bundle_members(session: AsyncSession, bundle_id: uuid.UUID) -> list[ProvisioningRequest]:
    return list(
        (
            await session.scalars(
                select(ProvisioningRequest)
                .where(ProvisioningRequest.bundle_id == bundle_id)
                .order_by(ProvisioningRequest.created_at, ProvisioningRequest.id)
                .execution_options(populate_existing=True)
            )
        ).all()
    )


async def live_resources(session: AsyncSession, request_ids: list[uuid.UUID]) -> list[Resource]:
    """Resources these requests produced that still exist (active, or being retired)."""
    return list(
        (
            await session.scalars(
                select(Resource).where(
                    Resource.request_id.in_(request_ids), Resource.state != "retired"
                )
            )
        ).all()
    )


async def locked_version(
    session: AsyncSession,
    model: type[ProvisioningRequest] | type[Resource],
    object_id: uuid.UUID,
    *,
    tenant: str,
) -> int | None:
    """The object's version, locked until the end of the transaction; None if not the
    tenant's. A conditional change compares it with `If-Match` before changing anything."""
    return await session.scalar(
        select(model.version).where(model.id == object_id, model.tenant == tenant).with_for_update()
    )


async def touch_resource(session: AsyncSession, resource_id: uuid.UUID) -> None:
    """A new version for the resource (the trigger counts it), with nothing else changed."""
    await session.execute(
        update(Resource)
        .where(Resource.id == resource_id)
        .values(version=Resource.version)
        .execution_options(synchronize_session=False)
    )


async def requester_of_resource(session: AsyncSession, resource: Resource) -> str | None:
    """Who asked for the resource: the requester of the provision that made it."""
    return await session.scalar(
        select(ProvisioningRequest.requester).where(
            ProvisioningRequest.id == resource.request_id,
            ProvisioningRequest.tenant == resource.tenant,
        )
    )
