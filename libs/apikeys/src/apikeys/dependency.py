"""The FastAPI dependency that turns `Authorization: Bearer <key>` into a caller, or a 401."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from fastapi import HTTPException, Request
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


def bearer_auth(
    session_factory: async_sessionmaker[AsyncSession],
) -> Callable[[Request], Awaitable[Caller]]:
    async def authenticate(request: Request) -> Caller:
        scheme, _, presented = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not presented.strip():
            raise HTTPException(401, "Missing bearer API key", headers=UNAUTHORIZED_HEADERS)
        async with session_factory() as session:
            key = await verify_key(session, presented.strip())
        if key is None:
            raise HTTPException(401, "Invalid API key", headers=UNAUTHORIZED_HEADERS)
        return Caller(
            key_id=str(key.id),
            name=key.name,
            scopes=tuple(key.scopes),
            tenant=key.tenant,
            roles=tuple(key.roles),
        )

    return authenticate
