"""The FastAPI dependency that turns `Authorization: Bearer <key or token>` into a caller, or a
401: an API key (`prov_...`), or, when OAuth is configured, an identity provider's JWT."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import HTTPException, Request
from fastapi.security import HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from apikeys.caller import Caller
from apikeys.secret import KEY_PREFIX
from apikeys.store import verify_key
from apikeys.tokens import OAuthSettings, TokenVerifier

UNAUTHORIZED_HEADERS = {"WWW-Authenticate": 'Bearer realm="provisioning"'}
INVALID_TOKEN = "Invalid bearer token"


# Something more to check once the caller is known (a rate limit, say): raises to refuse.
Check = Callable[[Request, Caller], Awaitable[None]]


class ApiKeyBearer(HTTPBearer):
    """The dependency every API route takes. Being FastAPI's HTTP bearer scheme, it declares
    itself in the OpenAPI document, so each operation states that it needs a key."""

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        checks: tuple[Check, ...] = (),
        tokens: TokenVerifier | None = None,
    ) -> None:
        description = "`Authorization: Bearer <API key>`; an admin issues keys at /v1/keys."
        if tokens is not None:
            description += (
                " Or an OAuth2 client-credentials access token (JWT) of the configured"
                " identity provider, carrying the caller's tenant and roles."
            )
        super().__init__(
            bearerFormat="API key (prov_...) or JWT" if tokens else "API key (prov_...)",
            scheme_name="ApiKey",
            description=description,
            auto_error=False,
        )
        self._session_factory, self._checks, self._tokens = session_factory, checks, tokens

    def then(self, check: Check) -> ApiKeyBearer:
        """The same authentication, followed by `check`."""
        return ApiKeyBearer(self._session_factory, (*self._checks, check), self._tokens)

    async def __call__(self, request: Request) -> Caller:  # type: ignore[override]
        scheme, _, presented = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not presented.strip():
            raise HTTPException(401, "Missing bearer API key", headers=UNAUTHORIZED_HEADERS)
        caller = await self._identify(presented.strip())
        if caller is None:
            raise HTTPException(401, INVALID_TOKEN, headers=UNAUTHORIZED_HEADERS)
        for check in self._checks:
            await check(request, caller)
        return caller

    async def _identify(self, presented: str) -> Caller | None:
        if not presented.startswith(KEY_PREFIX):
            return await self._tokens.verify(presented) if self._tokens else None
        async with self._session_factory() as session:
            key = await verify_key(session, presented)
        if key is None:
            return None
        return Caller(
            key_id=str(key.id),
            name=key.name,
            scopes=tuple(key.scopes),
            tenant=key.tenant,
            roles=tuple(key.roles),
            rate_limit=key.rate_limit,
        )


def bearer_auth(
    session_factory: async_sessionmaker[AsyncSession], oauth: OAuthSettings | None = None
) -> ApiKeyBearer:
    """Keys always; access tokens too when `oauth` names an identity provider."""
    tokens = TokenVerifier.from_settings(oauth) if oauth and oauth.enabled else None
    return ApiKeyBearer(session_factory, tokens=tokens)
