"""The use cases of /Groups: a membership change is an access change for each user who joined
or left, filed as a modify of their directory account."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from scim2_models import Context, Group, InvalidValueException, PatchOp
from sqlalchemy.ext.asyncio import AsyncSession

from request_api.scim import onboarding, provisioning, repository, resources
from request_api.scim.models import ScimGroup
from request_api.scim.onboarding import UserModel
from request_api.scim.provisioning import Provisioning
from request_api.submissions import Requester


async def create(
    p: Provisioning, session: AsyncSession, requester: Requester, body: dict[str, Any]
) -> ScimGroup:
    group = Group.model_validate(body, scim_ctx=Context.RESOURCE_CREATION_REQUEST)
    users = await _member_users(session, group, requester.tenant)
    now = datetime.now(UTC)
    row = ScimGroup(
        id=uuid.uuid4(),
        tenant=requester.tenant,
        version=1,
        created_at=now,
        last_modified=now,
        **resources.group_columns(group),
    )
    session.add(row)
    await session.flush()
    await repository.set_members(session, row, users)
    await _follow(p, session, requester, users)
    return row


async def replace(
    p: Provisioning,
    session: AsyncSession,
    requester: Requester,
    row: ScimGroup,
    body: dict[str, Any],
    base_url: str,
) -> None:
    replacement = Group.model_validate(body, scim_ctx=Context.RESOURCE_REPLACEMENT_REQUEST)
    replacement.replace(resources.group_resource(row, base_url))
    await _change(p, session, requester, row, replacement)


async def patch(
    p: Provisioning,
    session: AsyncSession,
    requester: Requester,
    row: ScimGroup,
    body: dict[str, Any],
    base_url: str,
) -> None:
    operations = PatchOp[Group].model_validate(body, scim_ctx=Context.RESOURCE_PATCH_REQUEST)
    group = resources.group_resource(row, base_url)
    if operations.patch(group):
        await _change(p, session, requester, row, group)


async def delete(
    p: Provisioning, session: AsyncSession, requester: Requester, row: ScimGroup
) -> None:
    members = await repository.members_of(session, row.id)
    await repository.delete_group(session, row)
    await session.flush()
    await _follow(p, session, requester, members)


async def forget_user(
    session: AsyncSession, user_id: uuid.UUID, group_ids: list[uuid.UUID], tenant: str
) -> None:
    """A deleted user leaves every group that listed them (RFC 7644 §3.6)."""
    for group_id in group_ids:
        row = await repository.get_group(session, group_id, tenant=tenant, lock=True)
        if row is None:
            continue
        members = [m for m in row.document.get("members", []) if m.get("value") != str(user_id)]
        kept = {name: value for name, value in row.document.items() if name != "members"}
        row.document = {**kept, "members": members} if members else kept
        row.version += 1
        row.last_modified = datetime.now(UTC)


async def _change(
    p: Provisioning, session: AsyncSession, requester: Requester, row: ScimGroup, group: Group
) -> None:
    users = await _member_users(session, group, row.tenant)
    before = await repository.members_of(session, row.id)
    renamed = group.display_name != row.display_name
    for name, value in resources.group_columns(group).items():
        setattr(row, name, value)
    row.version += 1
    row.last_modified = datetime.now(UTC)
    await repository.set_members(session, row, users)
    # Those who joined or left; everyone when the group's directory name changed.
    await _follow(p, session, requester, (before | users) if renamed else (before ^ users))


async def _member_users(session: AsyncSession, group: Group, tenant: str) -> set[uuid.UUID]:
    """The users among the members; every member must be a user or group of the tenant."""
    values = [str(member.value) for member in group.members or [] if member.value]
    try:
        ids = [uuid.UUID(value) for value in values]
    except ValueError as error:
        raise InvalidValueException(detail=f"a member is not a known id: {error}") from error
    users, groups = await repository.existing_ids(session, ids, tenant=tenant)
    unknown = set(ids) - users - groups
    if unknown:
        listed = ", ".join(sorted(str(u) for u in unknown))
        raise InvalidValueException(detail=f"no user or group {listed} in this tenant")
    return users


async def _follow(
    p: Provisioning, session: AsyncSession, requester: Requester, user_ids: Iterable[uuid.UUID]
) -> None:
    """Each user's directory account follows their groups now."""
    ids = sorted(set(user_ids))
    if not ids:
        return
    rows = await repository.users_by_id(session, ids, tenant=requester.tenant)
    memberships = await repository.groups_of_users(session, ids, tenant=requester.tenant)
    for row in rows:
        groups = onboarding.directory_groups([g.display_name for g in memberships[row.id]])
        user = UserModel.model_validate(row.document)
        await provisioning.update_account(p, session, requester, row, user, groups)
