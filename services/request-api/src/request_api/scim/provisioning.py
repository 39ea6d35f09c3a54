"""What a user's lifecycle files in the pipeline: joiner (the onboarding bundle of their role),
mover (a modify of their directory account: groups, department, names), leaver (in-flight
onboarding cancelled, everything they hold deprovisioned). All in the route's transaction."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from scim2_models import InvalidValueException
from sqlalchemy.ext.asyncio import AsyncSession

from catalog import Catalog, entitlements
from events import ServiceRuntime
from events.contracts import lifecycle
from events.contracts.requests import CancellationRequested
from request_api import repository
from request_api.api_bundles import file_bundle
from request_api.api_common import NewRequest, change_problems, item_problems
from request_api.api_people import offboard_person
from request_api.scim import onboarding
from request_api.scim.models import ScimUser
from request_api.scim.onboarding import Onboarding, UserModel
from request_api.submissions import Requester, ResourceNotActive, submit


@dataclass(frozen=True)
class Provisioning:
    runtime: ServiceRuntime
    catalog: Catalog
    onboarding: Onboarding


async def onboard(
    p: Provisioning,
    session: AsyncSession,
    requester: Requester,
    row: ScimUser,
    user: UserModel,
    groups: list[str],
) -> None:
    """File the onboarding bundle of the user's role; the user keeps the requests' ids."""
    row.onboardings += 1
    wanted = onboarding.bundle_requests(
        p.onboarding, user, person=row.person, generation=row.onboardings, groups=groups
    )
    items = [NewRequest.model_validate(request) for request in wanted]
    errors = [
        f"{error['field']}: {error['message']}"
        for item in items
        for error in item_problems(
            p.catalog,
            item.catalog_item,
            item.parameters,
            tenant=requester.tenant,
            prefix=f"{item.catalog_item}.",
        )[1]
    ]
    if errors:
        raise InvalidValueException(detail="the user cannot be onboarded: " + "; ".join(errors))
    bundle = await file_bundle(
        p.runtime, session, p.catalog, requester, items, all_or_nothing=False
    )
    filed = await repository.bundle_members(session, bundle.id)
    row.request_ids = [*row.request_ids, *(str(request.id) for request in filed)]
    account = next((r for r in filed if r.catalog_item == onboarding.ACCOUNT), None)
    row.directory_account_id = account.resource_id if account else None


async def offboard(
    p: Provisioning, session: AsyncSession, requester: Requester, row: ScimUser
) -> None:
    """Stop what onboarding has not finished, and deprovision everything the person holds
    (their directory account first)."""
    for request_id in row.request_ids:
        cancelled = await repository.request_cancel(
            session,
            uuid.UUID(request_id),
            tenant=row.tenant,
            by=f"{requester.name} (the identity provider deactivated or deleted the user)",
        )
        if cancelled is not None:
            reason = "the identity provider deactivated or deleted the user"
            p.runtime.publish(
                session, CancellationRequested(request_id=cancelled.id, reason=reason)
            )
    filed, _ = await offboard_person(p.runtime, session, requester, row.person)
    row.request_ids = [*row.request_ids, *(entry["request_id"] for entry in filed)]


async def update_account(
    p: Provisioning,
    session: AsyncSession,
    requester: Requester,
    row: ScimUser,
    user: UserModel,
    groups: list[str],
) -> None:
    """File a modify when the directory account differs from the user: their groups, role,
    department, names or mail. An account still being provisioned cannot change yet: the
    user is marked, and the reconciler files the change once it is active. A group or
    department outside the tenant's allow-list refuses the whole SCIM change."""
    row.access_pending = False
    item = p.catalog.get(onboarding.ACCOUNT)
    if not row.active or row.directory_account_id is None or item is None:
        return
    wanted = _account_parameters(p.onboarding, user, row.person, groups)
    # Checked before the account is active too: the reconciler must never be left holding
    # access the allow-list forbids.
    refused = entitlements.problems(item.entitlements, wanted, tenant=row.tenant)
    if refused:
        detail = "; ".join(f"{e.field}: {e.message}" for e in refused)
        raise InvalidValueException(detail=f"the directory account cannot follow: {detail}")
    resource = await repository.get_resource(session, row.directory_account_id, tenant=row.tenant)
    if resource is None:
        filed = await repository.requests_of_resource(session, row.directory_account_id)
        row.access_pending = any(r.status not in lifecycle.TERMINAL for r in filed)
        return
    if resource.state != "active":
        return
    changed = {**resource.parameters, **wanted}
    if changed == resource.parameters:
        return
    problems = change_problems(item, resource.parameters, changed, tenant=row.tenant)
    if problems:
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in problems)
        raise InvalidValueException(detail=f"the directory account cannot follow: {detail}")
    try:
        request = await submit(
            p.runtime,
            session,
            requester,
            resource.catalog_item,
            changed,
            operation="modify",
            resource_id=resource.id,
        )
    except ResourceNotActive:
        return
    row.request_ids = [*row.request_ids, str(request.id)]


def _account_parameters(
    rules: Onboarding, user: UserModel, person: str, groups: list[str]
) -> dict[str, Any]:
    bundle = rules.bundle_of(onboarding.role_of(user))
    fixed = next((i.parameters for i in bundle if i.catalog_item == onboarding.ACCOUNT), {})
    return {**fixed, **onboarding.account_parameters(user, person, groups)}
