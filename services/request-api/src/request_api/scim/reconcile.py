"""A group joined while the user's directory account was still being provisioned: once the
account is active, its change is filed (the access the IdP asked for is never dropped)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from request_api.scim import provisioning, repository, users
from request_api.scim.onboarding import UserModel
from request_api.scim.provisioning import Provisioning
from request_api.submissions import Requester

INTERVAL_S = 2.0
# Files on behalf of the identity provider; an IdP integration key is an admin key.
REQUESTER = "scim-reconciler"


async def tick(p: Provisioning, session: AsyncSession) -> None:
    for row in await repository.users_awaiting_access(session):
        groups = await users.directory_groups_of(session, row)
        requester = Requester(name=REQUESTER, tenant=row.tenant, roles=("admin",))
        user = UserModel.model_validate(row.document)
        await provisioning.update_account(p, session, requester, row, user, groups)
