"""The roles a key may carry, per tenant."""

from typing import Literal, get_args

Role = Literal["requester", "approver", "admin", "auditor"]
ROLES: frozenset[str] = frozenset(get_args(Role))


def unknown_roles(roles: list[str]) -> list[str]:
    return [role for role in roles if role not in ROLES]
