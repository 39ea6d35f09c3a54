"""Every query of the deployer's own database."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from deployer.models import Credential, DeploymentState, ManagedResource


@dataclass(frozen=True)
class SealedCredential:
    username: str
    nonce: bytes
    ciphertext: bytes


async def save_credential(
    session: AsyncSession,
    *,
    resource_id: uuid.UUID,
    request_id: uuid.UUID,
    tenant: str,
    username: str,
    nonce: bytes,
    ciphertext: bytes,
) -> None:
    """Keep the resource's secret, replacing an older one (a rotation): revealable again."""
    values = {"username": username, "nonce": nonce, "ciphertext": ciphertext}
    await session.execute(
        insert(Credential)
        .values(resource_id=resource_id, request_id=request_id, tenant=tenant, **values)
        .on_conflict_do_update(
            index_elements=[Credential.resource_id],
            set_={
                **values,
                "request_id": request_id,
                "revealed_at": None,
                "created_at": func.now(),
            },
        )
    )


async def take_for_reveal(session: AsyncSession, resource_id: uuid.UUID) -> SealedCredential | None:
    """Mark the credential revealed and wipe it, returning it; None if already revealed.

    The row lock makes two concurrent reveals see it once between them.
    """
    row = (
        await session.execute(
            select(Credential.username, Credential.nonce, Credential.ciphertext)
            .where(Credential.resource_id == resource_id, Credential.revealed_at.is_(None))
            .with_for_update()
        )
    ).first()
    if row is None or row.nonce is None or row.ciphertext is None:
        return None
    await session.execute(
        update(Credential)
        .where(Credential.resource_id == resource_id)
        .values(revealed_at=func.now(), nonce=None, ciphertext=None)
    )
    return SealedCredential(row.username, row.nonce, row.ciphertext)


async def credential_exists(session: AsyncSession, resource_id: uuid.UUID) -> bool:
    found = await session.scalar(
        select(Credential.resource_id).where(Credential.resource_id == resource_id)
    )
    return found is not None


async def forget_credential(session: AsyncSession, resource_id: uuid.UUID) -> None:
    """The resource is gone: so is any secret still kept for it."""
    await session.execute(delete(Credential).where(Credential.resource_id == resource_id))


async def lock_state(session: AsyncSession, request_id: uuid.UUID) -> DeploymentState:
    """The request's row, created if missing, locked until commit."""
    await session.execute(
        insert(DeploymentState).values(request_id=request_id, state="new").on_conflict_do_nothing()
    )
    state = await session.get(
        DeploymentState, request_id, with_for_update=True, populate_existing=True
    )
    assert state is not None
    return state


async def manage(session: AsyncSession, resource: ManagedResource) -> None:
    """Start looking after a resource just created (a redelivery finds it there already)."""
    await session.merge(resource)


async def get_managed(session: AsyncSession, resource_id: uuid.UUID) -> ManagedResource | None:
    return await session.get(ManagedResource, resource_id)


async def lock_managed(session: AsyncSession, resource_id: uuid.UUID) -> ManagedResource | None:
    return await session.get(
        ManagedResource, resource_id, with_for_update=True, populate_existing=True
    )


async def claim_due_for_check(
    session: AsyncSession, *, checked_before: datetime, limit: int
) -> Sequence[ManagedResource]:
    """Active resources not checked since `checked_before`, least recently checked first;
    replicas claim different ones."""
    return (
        await session.scalars(
            select(ManagedResource)
            .where(
                ManagedResource.status == "active",
                (ManagedResource.checked_at.is_(None))
                | (ManagedResource.checked_at < checked_before),
            )
            .order_by(ManagedResource.checked_at.asc().nulls_first())
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    ).all()


async def claim_due_for_deletion(
    session: AsyncSession, *, now: datetime, limit: int
) -> Sequence[ManagedResource]:
    return (
        await session.scalars(
            select(ManagedResource)
            .where(ManagedResource.status == "disabled", ManagedResource.delete_after <= now)
            .order_by(ManagedResource.delete_after)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    ).all()
