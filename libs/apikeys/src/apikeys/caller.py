"""Who is calling: what an API key or an access token vouches for."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Caller:
    # The key's id, or `oauth:<issuer>:<client>` for an access token: what rate limits count.
    key_id: str
    name: str
    scopes: tuple[str, ...]
    tenant: str
    roles: tuple[str, ...]
    # The key's own rate limit ("5/second"); None means the service's default.
    rate_limit: str | None = None
