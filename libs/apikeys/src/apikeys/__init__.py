"""API keys: random secrets stored only as hashes, checked on every /v1 call."""

from apikeys.dependency import Caller, bearer_auth
from apikeys.store import ApiKey, create_key, ensure_schema, verify_key

__all__ = ["ApiKey", "Caller", "bearer_auth", "create_key", "ensure_schema", "verify_key"]
