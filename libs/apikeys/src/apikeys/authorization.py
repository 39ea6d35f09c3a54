"""Who may do what to an object: one table, asked by every route that takes an id.

A caller stands in one or more relations to an object: as a person (who asked for it, whom
it is for, who owns it, who may decide its approval) or through a role of their tenant
(admin, auditor) or the installation (the operator). Each action lists the relations that
allow it. Tenants come first and are not decided here: another tenant's object is never
found (404) before this table is asked, so a refusal here (403) is only ever about a
colleague's object.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from fastapi import HTTPException

from apikeys.caller import Caller

# The scope of the installation's operator (the bootstrap key).
PLATFORM_SCOPE = "platform"


class Relation(StrEnum):
    REQUESTER = "requester"  # asked for it (a request, or the request that made a resource)
    BENEFICIARY = "beneficiary"  # the person it was asked for (the request's assignee)
    OWNER = "owner"  # the resource is theirs (its assignee, else its requester)
    APPROVER = "approver"  # may decide one of its approval stages, by the stage's own rule
    ADMIN = "admin"  # the tenant's admin
    AUDITOR = "auditor"  # the tenant's auditor
    OPERATOR = "operator"  # the installation's operator (the `platform` scope)


class Action(StrEnum):
    READ = "read"
    REVEAL_CREDENTIALS = "reveal_credentials"
    MODIFY = "modify"
    ROTATE_CREDENTIALS = "rotate_credentials"
    EXTEND = "extend"
    VERIFY = "verify"
    CANCEL = "cancel"
    DEPROVISION = "deprovision"
    REMEDIATE = "remediate"
    RETRY_COMPENSATION = "retry_compensation"
    APPROVE = "approve"
    READ_PERSON = "read_person"
    OFFBOARD = "offboard"
    READ_AUDIT = "read_audit"
    READ_AUDIT_REPORTS = "read_audit_reports"
    EXPORT_AUDIT = "export_audit"
    MANAGE_KEYS = "manage_keys"
    MANAGE_OPERATOR_KEYS = "manage_operator_keys"
    MANAGE_TENANT_POOLS = "manage_tenant_pools"
    MANAGE_SHARED_POOLS = "manage_shared_pools"
    MANAGE_WEBHOOKS = "manage_webhooks"
    READ_DIRECTORY = "read_directory"
    MANAGE_DIRECTORY = "manage_directory"


R = Relation
_HOLDERS = frozenset({R.OWNER, R.REQUESTER})

WHO_MAY: Mapping[Action, frozenset[Relation]] = {
    # A request, a resource, a bundle or an approval stage.
    Action.READ: frozenset({*_HOLDERS, R.BENEFICIARY, R.APPROVER, R.ADMIN, R.AUDITOR}),
    # The secret goes to the person it is for and to whoever asked for it (who hands it
    # over), never to an admin: an admin may rotate, but rotating then revealing would be
    # a takeover of a colleague's login.
    Action.REVEAL_CREDENTIALS: _HOLDERS,
    Action.MODIFY: frozenset({*_HOLDERS, R.ADMIN}),
    Action.ROTATE_CREDENTIALS: frozenset({*_HOLDERS, R.ADMIN}),
    Action.EXTEND: frozenset({*_HOLDERS, R.ADMIN}),
    Action.VERIFY: frozenset({*_HOLDERS, R.ADMIN, R.AUDITOR}),
    Action.CANCEL: frozenset({R.REQUESTER, R.BENEFICIARY, R.ADMIN}),
    Action.DEPROVISION: frozenset({*_HOLDERS, R.ADMIN}),
    Action.REMEDIATE: frozenset({*_HOLDERS, R.ADMIN}),
    Action.RETRY_COMPENSATION: frozenset({R.ADMIN}),
    # The stage's own rule names its approvers (roles, people, fallback), never the
    # requester; an admin decides only if the rule names admins.
    Action.APPROVE: frozenset({R.APPROVER}),
    # What a person holds: the person themself (as its owner), an admin, an auditor.
    Action.READ_PERSON: frozenset({R.OWNER, R.ADMIN, R.AUDITOR}),
    Action.OFFBOARD: frozenset({R.ADMIN}),
    # A request's or resource's history, timeline, state, or one record and its proof.
    Action.READ_AUDIT: frozenset({*_HOLDERS, R.BENEFICIARY, R.ADMIN, R.AUDITOR}),
    # Reports, evidence packs, verification and checkpoints of the tenant.
    Action.READ_AUDIT_REPORTS: frozenset({R.ADMIN, R.AUDITOR}),
    # An export holds the tenant's records in full (other tenants' as leaf hashes only,
    # so the chain still verifies); the operator's holds every tenant's.
    Action.EXPORT_AUDIT: frozenset({R.ADMIN, R.AUDITOR, R.OPERATOR}),
    Action.MANAGE_KEYS: frozenset({R.ADMIN}),
    # A key with the `platform` scope is the operator's: only the operator rotates or
    # revokes one, so that no tenant admin can take the installation over.
    Action.MANAGE_OPERATOR_KEYS: frozenset({R.OPERATOR}),
    Action.MANAGE_TENANT_POOLS: frozenset({R.ADMIN, R.OPERATOR}),
    # Pools every tenant draws from.
    Action.MANAGE_SHARED_POOLS: frozenset({R.OPERATOR}),
    # A subscription hears of every request of the tenant.
    Action.MANAGE_WEBHOOKS: frozenset({R.ADMIN}),
    # SCIM users and groups.
    Action.READ_DIRECTORY: frozenset({R.ADMIN, R.AUDITOR}),
    Action.MANAGE_DIRECTORY: frozenset({R.ADMIN}),
}

# The OpenAPI extension each guarded operation declares its action in.
OPENAPI_EXTENSION = "x-authorization"


@dataclass(frozen=True)
class Subject:
    """The people an object names. Any may be unknown (None)."""

    requester: str | None = None
    beneficiary: str | None = None
    owner: str | None = None
    # Decided by the approval rules, which know the stage (see request_api.approvals).
    approver: bool = False


NOBODY = Subject()


def relations(caller: Caller, subject: Subject = NOBODY) -> frozenset[Relation]:
    found: set[Relation] = set()
    if "admin" in caller.roles:
        found.add(R.ADMIN)
    if "auditor" in caller.roles:
        found.add(R.AUDITOR)
    if PLATFORM_SCOPE in caller.scopes:
        found.add(R.OPERATOR)
    if subject.approver:
        found.add(R.APPROVER)
    for relation, person in (
        (R.REQUESTER, subject.requester),
        (R.BENEFICIARY, subject.beneficiary),
        (R.OWNER, subject.owner),
    ):
        if person is not None and person == caller.name:
            found.add(relation)
    return frozenset(found)


def may(caller: Caller, action: Action, subject: Subject = NOBODY) -> bool:
    return bool(WHO_MAY[action] & relations(caller, subject))


def refusal(action: Action) -> str:
    """A sentence naming who may, for a 403's detail."""
    who = sorted(WHO_MAY[action])
    return f"Only its {', '.join(who)} may {action.value.replace('_', ' ')}."


class Forbidden(HTTPException):
    """403: the caller's tenant holds the object, but the caller may not do this to it."""

    def __init__(self, action: Action) -> None:
        super().__init__(403, "Not allowed")
        # The problem handler (events.http) gives it as the problem's detail.
        self.explanation = refusal(action)
        self.action = action


def require(caller: Caller, action: Action, subject: Subject = NOBODY) -> None:
    if not may(caller, action, subject):
        raise Forbidden(action)


def documented(action: Action) -> dict[str, Any]:
    """`openapi_extra` for a route guarded by `action`: the OpenAPI document then says who
    may call it, and the matrix test reads it from there."""
    return {OPENAPI_EXTENSION: {"action": action.value, "who": sorted(WHO_MAY[action])}}
