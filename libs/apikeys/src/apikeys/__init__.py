"""API keys: random secrets stored only as hashes, checked on every /v1 call."""

from apikeys.dependency import ApiKeyBearer, Caller, bearer_auth
from apikeys.roles import ROLES, Role
from apikeys.store import ApiKey, create_key, ensure_schema, issue_key, verify_key

__all__ = [
    "ROLES",
    "ApiKey",
    "ApiKeyBearer",
    "Caller",
    "Role",
    "bearer_auth",
    "create_key",
    "ensure_schema",
    "issue_key",
    "verify_key",
]
