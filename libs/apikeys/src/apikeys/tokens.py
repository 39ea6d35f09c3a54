"""OAuth2 client-credentials access tokens (JWTs) from an external identity provider, as a
second way in beside API keys. Configured by `OAUTH_*` variables; off unless the issuer, the
audience and the JWKS URL are all set."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import jwt
from pydantic import field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from apikeys.caller import Caller
from apikeys.jwks import JwksCache, http_fetch
from apikeys.roles import ROLES

log = logging.getLogger(__name__)

# Signatures by a key pair only: "none" proves nothing, and an HMAC "key" would have to be a
# secret shared with the provider (or, in the classic confusion attack, the public key).
ASYMMETRIC = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)


class OAuthSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="OAUTH_")

    issuer: str | None = None
    audience: str | None = None
    jwks_url: str | None = None
    algorithms: list[str] = ["RS256", "ES256"]
    tenant_claim: str = "tenant"
    roles_claim: str = "roles"
    leeway_s: float = 30.0
    jwks_cache_s: float = 300.0
    jwks_timeout_s: float = 5.0

    @field_validator("algorithms")
    @classmethod
    def _asymmetric_only(cls, algorithms: list[str]) -> list[str]:
        refused = [name for name in algorithms if name not in ASYMMETRIC]
        if refused or not algorithms:
            raise ValueError(f"allowed: some of {sorted(ASYMMETRIC)}; refused: {refused}")
        return algorithms

    @property
    def enabled(self) -> bool:
        return bool(self.issuer and self.audience and self.jwks_url)


class InvalidToken(Exception):
    """Why a token is refused: logged, never told to the caller."""


def caller_of(claims: Mapping[str, Any], settings: OAuthSettings) -> Caller:
    """The caller a verified token's claims describe."""
    principal = claims.get("client_id") or claims.get("sub")
    if not isinstance(principal, str) or not principal:
        raise InvalidToken("neither client_id nor sub names the client")
    tenant = claims.get(settings.tenant_claim)
    if not isinstance(tenant, str) or not tenant:
        raise InvalidToken(f"no {settings.tenant_claim!r} claim")
    roles = claims.get(settings.roles_claim)
    scope = claims.get("scope")
    return Caller(
        key_id=f"oauth:{settings.issuer}:{principal}",
        name=principal,
        # The operator's `platform` scope comes only with the installation's own key, never
        # from a provider's token.
        scopes=tuple(s for s in scope.split() if s != "platform") if isinstance(scope, str) else (),
        tenant=tenant,
        # Roles this platform does not know are the provider's business, not an error.
        roles=tuple(
            dict.fromkeys(role for role in roles if isinstance(role, str) and role in ROLES)
            if isinstance(roles, list)
            else ()
        ),
    )


class TokenVerifier:
    def __init__(self, settings: OAuthSettings, keys: JwksCache) -> None:
        self._settings, self._keys = settings, keys

    @classmethod
    def from_settings(cls, settings: OAuthSettings) -> TokenVerifier:
        if settings.jwks_url is None:
            raise ValueError("OAUTH_JWKS_URL is not set")
        fetch = http_fetch(settings.jwks_url, settings.jwks_timeout_s)
        keys = JwksCache(
            fetch, algorithms=frozenset(settings.algorithms), cache_s=settings.jwks_cache_s
        )
        return cls(settings, keys)

    async def verify(self, token: str) -> Caller | None:
        """The caller the token vouches for, or None (the reason logged, not the token)."""
        try:
            return caller_of(await self._claims(token), self._settings)
        except (jwt.PyJWTError, InvalidToken) as error:
            log.info("refused a bearer token: %s", error)
            return None

    async def _claims(self, token: str) -> dict[str, Any]:
        kid = jwt.get_unverified_header(token).get("kid")
        if kid is not None and not isinstance(kid, str):
            raise InvalidToken("kid is not a string")
        key = await self._keys.key(kid)
        if key is None:
            raise InvalidToken(f"no signing key {kid!r} in the provider's JWKS")
        settings = self._settings
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=settings.algorithms,
            audience=settings.audience,
            issuer=settings.issuer,
            leeway=settings.leeway_s,
            options={"require": ["exp", "iss", "aud"]},
        )
        return claims
