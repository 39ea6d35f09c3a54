"""Every query of the SCIM feature; always scoped by tenant, never committing."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from request_api.scim.models import ScimGroup, ScimMembership, ScimUser


async def get_user(
    session: AsyncSession, user_id: uuid.UUID, *, tenant: str, lock: bool = False
) -> ScimUser | None:
    query = select(ScimUser).where(ScimUser.id == user_id, ScimUser.tenant == tenant)
    return await session.scalar(query.with_for_update() if lock else query)


async def user_name_taken(
    session: AsyncSession, user_name_key: str, *, tenant: str, other_than: uuid.UUID | None
) -> bool:
    query = select(ScimUser.id).where(
        ScimUser.tenant == tenant, ScimUser.user_name_key == user_name_key
    )
    if other_than is not None:
        query = query.where(ScimUser.id != other_than)
    return await session.scalar(query.limit(1)) is not None


async def person_taken(session: AsyncSession, person: str, *, tenant: str) -> bool:
    query = select(ScimUser.id).where(ScimUser.tenant == tenant, ScimUser.person == person)
    return await session.scalar(query.limit(1)) is not None


async def page_of_users(
    session: AsyncSession,
    *,
    tenant: str,
    condition: ColumnElement[bool] | None,
    offset: int,
    limit: int,
) -> tuple[int, list[ScimUser]]:
    return await _page(session, ScimUser, tenant, condition, offset, limit)


async def page_of_groups(
    session: AsyncSession,
    *,
    tenant: str,
    condition: ColumnElement[bool] | None,
    offset: int,
    limit: int,
) -> tuple[int, list[ScimGroup]]:
    return await _page(session, ScimGroup, tenant, condition, offset, limit)


async def _page(
    session: AsyncSession,
    model: Any,
    tenant: str,
    condition: ColumnElement[bool] | None,
    offset: int,
    limit: int,
) -> tuple[int, list[Any]]:
    """The total matching, and one page in a stable order (creation, then id)."""
    where = [model.tenant == tenant, *([condition] if condition is not None else [])]
    total = await session.scalar(select(func.count()).select_from(model).where(*where))
    rows: list[Any] = []
    if limit > 0:
        rows = list(
            (
                await session.scalars(
                    select(model)
                    .where(*where)
                    .order_by(model.created_at, model.id)
                    .offset(offset)
                    .limit(limit)
                )
            ).all()
        )
    return int(total or 0), rows


async def delete_user(session: AsyncSession, user: ScimUser) -> None:
    await session.execute(delete(ScimMembership).where(ScimMembership.user_id == user.id))
    await session.delete(user)


async def get_group(
    session: AsyncSession, group_id: uuid.UUID, *, tenant: str, lock: bool = False
) -> ScimGroup | None:
    query = select(ScimGroup).where(ScimGroup.id == group_id, ScimGroup.tenant == tenant)
    return await session.scalar(query.with_for_update() if lock else query)


async def delete_group(session: AsyncSession, group: ScimGroup) -> None:
    await session.execute(delete(ScimMembership).where(ScimMembership.group_id == group.id))
    await session.delete(group)


async def existing_ids(
    session: AsyncSession, ids: Sequence[uuid.UUID], *, tenant: str
) -> tuple[set[uuid.UUID], set[uuid.UUID]]:
    """Which of `ids` are users, and which groups, of the tenant."""
    users = await session.scalars(
        select(ScimUser.id).where(ScimUser.tenant == tenant, ScimUser.id.in_(ids))
    )
    groups = await session.scalars(
        select(ScimGroup.id).where(ScimGroup.tenant == tenant, ScimGroup.id.in_(ids))
    )
    return set(users.all()), set(groups.all())


async def members_of(session: AsyncSession, group_id: uuid.UUID) -> set[uuid.UUID]:
    found = await session.scalars(
        select(ScimMembership.user_id).where(ScimMembership.group_id == group_id)
    )
    return set(found.all())


async def set_members(session: AsyncSession, group: ScimGroup, user_ids: set[uuid.UUID]) -> None:
    await session.execute(delete(ScimMembership).where(ScimMembership.group_id == group.id))
    session.add_all(
        ScimMembership(group_id=group.id, user_id=user_id, tenant=group.tenant)
        for user_id in sorted(user_ids)
    )
    await session.flush()


async def groups_of_users(
    session: AsyncSession, user_ids: Sequence[uuid.UUID], *, tenant: str
) -> dict[uuid.UUID, list[ScimGroup]]:
    """Each user's groups (direct membership), by display name."""
    rows = await session.execute(
        select(ScimMembership.user_id, ScimGroup)
        .join(ScimGroup, ScimGroup.id == ScimMembership.group_id)
        .where(ScimMembership.tenant == tenant, ScimMembership.user_id.in_(user_ids))
        .order_by(ScimGroup.display_name, ScimGroup.id)
    )
    found: dict[uuid.UUID, list[ScimGroup]] = {user_id: [] for user_id in user_ids}
    for user_id, group in rows.tuples():
        found[user_id].append(group)
    return found


async def users_by_id(
    session: AsyncSession, user_ids: Sequence[uuid.UUID], *, tenant: str
) -> list[ScimUser]:
    found = await session.scalars(
        select(ScimUser)
        .where(ScimUser.tenant == tenant, ScimUser.id.in_(user_ids))
        .order_by(ScimUser.id)
        .with_for_update()
    )
    return list(found.all())


async def users_awaiting_access(session: AsyncSession, *, limit: int = 50) -> list[ScimUser]:
    """Users whose access change waits for their account, in every tenant: the reconciler
    serves them all, as the consume loop does. Claimed, so that replicas share the work."""
    found = await session.scalars(
        select(ScimUser)
        .where(ScimUser.access_pending)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return list(found.all())
