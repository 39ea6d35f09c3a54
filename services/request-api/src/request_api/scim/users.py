"""The use cases of /Users: create, replace, patch and delete a user, each driving the user's
provisioning; the route owns the transaction."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from scim2_models import Context, PatchOp, UniquenessException
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from request_api.scim import groups as scim_groups
from request_api.scim import onboarding, provisioning, repository, resources
from request_api.scim.models import ScimUser
from request_api.scim.onboarding import UserModel
from request_api.scim.provisioning import Provisioning
from request_api.submissions import Requester


async def create(
    p: Provisioning, session: AsyncSession, requester: Requester, body: dict[str, Any]
) -> ScimUser:
    user = UserModel.model_validate(body, scim_ctx=Context.RESOURCE_CREATION_REQUEST)
    columns = resources.user_columns(user)
    await _refuse_taken_name(session, columns["user_name_key"], requester.tenant, None)
    now = datetime.now(UTC)
    row = ScimUser(
        id=uuid.uuid4(),
        tenant=requester.tenant,
        version=1,
        created_at=now,
        last_modified=now,
        onboardings=0,
        request_ids=[],
        **columns,
    )
    row.person = await _person_for(session, row)
    session.add(row)
    await _flush_unique(session)
    if row.active:
        await provisioning.onboard(p, session, requester, row, user, groups=[])
    return row


async def replace(
    p: Provisioning,
    session: AsyncSession,
    requester: Requester,
    row: ScimUser,
    body: dict[str, Any],
    base_url: str,
) -> None:
    current = await _resource(session, row, base_url)
    replacement = UserModel.model_validate(body, scim_ctx=Context.RESOURCE_REPLACEMENT_REQUEST)
    # Read-only attributes stay ours; an immutable one may not change (RFC 7644 §3.5.1).
    replacement.replace(current)
    await _change(p, session, requester, row, replacement)


async def patch(
    p: Provisioning,
    session: AsyncSession,
    requester: Requester,
    row: ScimUser,
    body: dict[str, Any],
    base_url: str,
) -> None:
    operations = PatchOp[UserModel].model_validate(body, scim_ctx=Context.RESOURCE_PATCH_REQUEST)
    user = await _resource(session, row, base_url)
    if operations.patch(user):
        await _change(p, session, requester, row, user)


async def delete(
    p: Provisioning, session: AsyncSession, requester: Requester, row: ScimUser
) -> None:
    """Offboard the user, and forget them: their groups no longer list them."""
    await provisioning.offboard(p, session, requester, row)
    groups = (await repository.groups_of_users(session, [row.id], tenant=row.tenant))[row.id]
    await repository.delete_user(session, row)
    await scim_groups.forget_user(session, row.id, [group.id for group in groups], row.tenant)


async def _change(
    p: Provisioning, session: AsyncSession, requester: Requester, row: ScimUser, user: UserModel
) -> None:
    """Store the user as changed and provision what the change means: deactivated →
    offboarding, reactivated → onboarding, still active → the account follows."""
    columns = resources.user_columns(user)
    if columns["user_name_key"] != row.user_name_key:
        await _refuse_taken_name(session, columns["user_name_key"], row.tenant, row.id)
    was_active = row.active
    for name, value in columns.items():
        setattr(row, name, value)
    row.version += 1
    row.last_modified = datetime.now(UTC)
    await _flush_unique(session)
    groups = await directory_groups_of(session, row)
    if was_active and not row.active:
        await provisioning.offboard(p, session, requester, row)
    elif row.active and not was_active:
        await provisioning.onboard(p, session, requester, row, user, groups)
    else:
        await provisioning.update_account(p, session, requester, row, user, groups)


async def directory_groups_of(session: AsyncSession, row: ScimUser) -> list[str]:
    groups = (await repository.groups_of_users(session, [row.id], tenant=row.tenant))[row.id]
    return onboarding.directory_groups([group.display_name for group in groups])


async def _resource(session: AsyncSession, row: ScimUser, base_url: str) -> UserModel:
    groups = (await repository.groups_of_users(session, [row.id], tenant=row.tenant))[row.id]
    return resources.user_resource(row, groups, base_url)


async def _refuse_taken_name(
    session: AsyncSession, user_name_key: str, tenant: str, other_than: uuid.UUID | None
) -> None:
    if await repository.user_name_taken(
        session, user_name_key, tenant=tenant, other_than=other_than
    ):
        raise UniquenessException(detail="userName is already taken in this tenant")


async def _flush_unique(session: AsyncSession) -> None:
    """A concurrent writer may have taken the userName since the check."""
    try:
        await session.flush()
    except IntegrityError as error:
        raise UniquenessException(detail="userName is already taken in this tenant") from error


async def _person_for(session: AsyncSession, row: ScimUser) -> str:
    """The person the platform provisions for: from the userName, tagged when another user
    of the tenant has it already."""
    base = onboarding.person_base(row.user_name)
    if await repository.person_taken(session, base, tenant=row.tenant):
        return onboarding.person_with_tag(base, row.id.hex)
    return base
