"""Between stored rows and SCIM resources: what is kept of a resource the IdP wrote, and the
resource answered (id, meta with a weak ETag, a user's groups)."""

from __future__ import annotations

from typing import Any

from scim2_models import Context, Group, GroupMembership, Meta

from request_api.scim import onboarding
from request_api.scim.models import ScimGroup, ScimUser
from request_api.scim.onboarding import UserModel
from request_api.scim.protocol import etag


def stored_user(user: UserModel) -> dict[str, Any]:
    """The document kept: no id, meta or groups (ours), and never a password (RFC 7643
    §4.1.1: returned never, and the platform keeps no one's password)."""
    kept = user.model_copy(deep=True)
    kept.id, kept.meta, kept.groups, kept.password = None, None, None, None
    return kept.model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE)


def stored_group(group: Group) -> dict[str, Any]:
    kept = group.model_copy(deep=True)
    kept.id, kept.meta = None, None
    return kept.model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE)


def user_columns(user: UserModel) -> dict[str, Any]:
    """The columns filters read, from the resource."""
    return {
        "document": stored_user(user),
        "user_name": user.user_name,
        "user_name_key": (user.user_name or "").lower(),
        "display_name": user.display_name,
        "external_id": user.external_id,
        "family_name": user.name.family_name if user.name else None,
        "email": onboarding.primary_email(user),
        # Unassigned means active: an IdP that never sends it manages no leavers this way.
        "active": user.active is not False,
    }


def group_columns(group: Group) -> dict[str, Any]:
    return {
        "document": stored_group(group),
        "display_name": group.display_name or "",
        "external_id": group.external_id,
    }


def user_resource(row: ScimUser, groups: list[ScimGroup], base_url: str) -> UserModel:
    user = UserModel.model_validate(row.document)
    user.id = str(row.id)
    user.meta = _meta("User", f"{base_url}/Users/{row.id}", row)
    user.groups = [
        GroupMembership(
            value=str(group.id),
            ref=f"{base_url}/Groups/{group.id}",
            display=group.display_name,
            type="direct",
        )
        for group in groups
    ] or None
    return user


def group_resource(row: ScimGroup, base_url: str) -> Group:
    group = Group.model_validate(row.document)
    group.id = str(row.id)
    group.meta = _meta("Group", f"{base_url}/Groups/{row.id}", row)
    return group


def _meta(resource_type: str, location: str, row: ScimUser | ScimGroup) -> Meta:
    return Meta(
        resource_type=resource_type,
        created=row.created_at,
        last_modified=row.last_modified,
        location=location,
        version=etag(row.version),
    )
