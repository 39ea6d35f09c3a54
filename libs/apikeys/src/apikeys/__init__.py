"""API keys: random secrets stored only as hashes, checked on every /v1 call; and, optionally,
an identity provider's access tokens."""

from apikeys.caller import Caller
from apikeys.dependency import ApiKeyBearer, bearer_auth
from apikeys.roles import ROLES, Role
from apikeys.store import (
    ApiKey,
    create_identity_engine,
    create_key,
    issue_key,
    verify_key,
)
from apikeys.tokens import OAuthSettings, TokenVerifier

__all__ = [
    "ROLES",
    "ApiKey",
    "ApiKeyBearer",
    "Caller",
    "OAuthSettings",
    "Role",
    "TokenVerifier",
    "bearer_auth",
    "create_identity_engine",
    "create_key",
    "issue_key",
    "verify_key",
]
