"""The FastAPI dependency that turns `Authorization: Bearer <key>` into a caller, or a 401."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from fastapi import HTTPException, Request
from fastapi.security import HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from apikeys.store import verify_key

UNAUTHORIZED_HEADERS = {"WWW-Authenticate": 'Bearer realm="provisioning"'}


@dataclass(frozen=True)
class Caller:
    key_id: str
    name: str
    scopes: tuple[str, ...]
    tenant: str
    roles: tuple[str, ...]
    # The key's own rate limit ("5/second"); None means the service's default.
    rate_limit: str | None = None


# Something more to check once the caller is known (a rate limit, say): raises to refuse.
Check = Callable[[Request, Caller], Awaitable[None]]


class ApiKeyBearer(HTTPBearer):
    """The dependency every API route takes. Being FastAPI's HTTP bearer scheme, it declares
    itself in the OpenAPI document, so each operation states that it needs a key."""

    def __init__(
        self, session_factory: async_sessionmaker[AsyncSession], checks: tuple[Check, ...] = ()
    ) -> None:
        super().__init__(
            bearerFormat="API key (prov_...)",
            scheme_name="ApiKey",
            description="`Authorization: Bearer <API key>`; an admin issues keys at /v1/keys.",
            auto_error=False,
        )
        self._session_factory, self._checks = session_factory, checks

    def then(self, check: Check) -> ApiKeyBearer:
        """The same authentication, followed by `check`."""
        return ApiKeyBearer(self._session_factory, (*self._checks, check))

    async def __call__(self, request: Request) -> Caller:  # type: ignore[override]
        scheme, _, presented = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not presented.strip():
            raise HTTPException(401, "Missing bearer API key", headers=UNAUTHORIZED_HEADERS)
        async with self._session_factory() as session:
            key = await verify_key(session, presented.strip())
        if key is None:
            raise HTTPException(401, "Invalid API key", headers=UNAUTHORIZED_HEADERS)
        caller = Caller(
            key_id=str(key.id),
            name=key.name,
            scopes=tuple(key.scopes),
            tenant=key.tenant,
            roles=tuple(key.roles),
            rate_limit=key.rate_limit,
        )
        for check in self._checks:
            await check(request, caller)
        return caller


def bearer_auth(session_factory: async_sessionmaker[AsyncSession]) -> ApiKeyBearer:
    return ApiKeyBearer(session_factory)
