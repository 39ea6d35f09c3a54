"""Routes for a tenant's admin to manage its API keys: create, list, show, rotate, revoke.

A secret is answered once, by create or rotate; a list or a read shows only a hint. An admin
sees only its own tenant's keys: another tenant's key is not found.
"""

import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, field_validator
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from apikeys import ApiKey, Caller, Role
from apikeys import store as keys
from apikeys.authorization import PLATFORM_SCOPE, Action, documented, may, require
from apikeys.store import KeyStatus
from events.http import ProblemError
from request_api.limit_rules import parse_rate_limit

Principal = Annotated[
    str,
    StringConstraints(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9._@:-]*$"),
]
Scope = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_.:-]{0,49}$")]
Tenant = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{0,99}$")]
# The operator's scope: it issues keys for any tenant (a new tenant's first admin), and only
# a key that has it may give it, rotate or revoke a key that has it.
PLATFORM = PLATFORM_SCOPE
# An answer holding a secret must not be kept by a cache, nor replayed for an
# Idempotency-Key: the secret is shown once.
NO_STORE = "no-store"


class NewKey(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # The principal the key acts as: a person or a system of the admin's tenant.
    name: Principal
    # Another tenant than the admin's own: only with the `platform` scope.
    tenant: Tenant | None = None
    roles: list[Role] = Field(min_length=1, max_length=4)
    scopes: list[Scope] = Field(default_factory=lambda: ["requests"], max_length=20)
    expires_at: AwareDatetime | None = None
    # The key's own rate limit in the `limits` notation; the service's default otherwise.
    rate_limit: str | None = Field(default=None, max_length=50, examples=["5/second"])

    @field_validator("expires_at")
    @classmethod
    def _in_the_future(cls, value: datetime | None) -> datetime | None:
        if value is not None and value <= datetime.now(UTC):
            raise ValueError("must be in the future")
        return value

    @field_validator("rate_limit")
    @classmethod
    def _a_rate_limit(cls, value: str | None) -> str | None:
        if value is not None:
            parse_rate_limit(value)
        return value


class KeyView(BaseModel):
    id: uuid.UUID
    name: str
    tenant: str
    roles: list[str]
    scopes: list[str]
    hint: str = Field(examples=["prov_…x9Qa"])
    rate_limit: str | None
    status: KeyStatus
    created_by: str | None
    created_at: datetime
    rotated_at: datetime | None
    expires_at: datetime | None
    revoked_at: datetime | None

    @classmethod
    def of(cls, key: ApiKey) -> "KeyView":
        return cls(
            id=key.id,
            name=key.name,
            tenant=key.tenant,
            roles=list(key.roles),
            scopes=list(key.scopes),
            hint=key.hint,
            rate_limit=key.rate_limit,
            status=key.status_at(datetime.now(UTC)),
            created_by=key.created_by,
            created_at=key.created_at,
            rotated_at=key.rotated_at,
            expires_at=key.expires_at,
            revoked_at=key.revoked_at,
        )


class IssuedKey(KeyView):
    # Shown this once: only its hash is kept.
    secret: str


class KeyList(BaseModel):
    items: list[KeyView]


def create_router(
    identity: async_sessionmaker[AsyncSession],
    authenticate: Callable[[Request], Awaitable[Caller]],
) -> APIRouter:
    router = APIRouter(prefix="/v1/keys", tags=["keys"])

    async def admin(caller: Annotated[Caller, Depends(authenticate)]) -> Caller:
        require(caller, Action.MANAGE_KEYS)
        return caller

    AdminDep = Annotated[Caller, Depends(admin)]

    @router.post("", status_code=201)
    async def create_key(body: NewKey, caller: AdminDep, response: Response) -> IssuedKey:
        """A new key for a principal of the admin's tenant (or, for the platform's operator,
        of any tenant). The secret is in this answer only."""
        tenant = body.tenant or caller.tenant
        operator = may(caller, Action.MANAGE_OPERATOR_KEYS)
        if (tenant != caller.tenant or PLATFORM in body.scopes) and not operator:
            raise ProblemError(
                403,
                "Only the platform's operator may do this",
                "Keys for another tenant, and the `platform` scope, are the operator's.",
            )
        async with identity_transaction(identity) as session:
            key, secret = await keys.issue_key(
                session,
                name=body.name,
                scopes=list(dict.fromkeys(body.scopes)),
                tenant=tenant,
                roles=list(dict.fromkeys(body.roles)),
                expires_at=body.expires_at,
                rate_limit=body.rate_limit,
                created_by=caller.name,
            )
            issued = IssuedKey(**KeyView.of(key).model_dump(), secret=secret)
        response.headers["Location"] = f"/v1/keys/{issued.id}"
        response.headers["Cache-Control"] = NO_STORE
        return issued

    @router.get("")
    async def list_keys(caller: AdminDep) -> KeyList:
        async with identity_transaction(identity) as session:
            found = await keys.list_keys(session, tenant=caller.tenant)
            return KeyList(items=[KeyView.of(key) for key in found])

    @router.get("/{key_id}", openapi_extra=documented(Action.MANAGE_KEYS))
    async def get_key(key_id: uuid.UUID, caller: AdminDep) -> KeyView:
        async with identity_transaction(identity) as session:
            return KeyView.of(await _key(session, key_id, caller))

    @router.post("/{key_id}/rotate", openapi_extra=documented(Action.MANAGE_KEYS))
    async def rotate_key(key_id: uuid.UUID, caller: AdminDep, response: Response) -> IssuedKey:
        """A new secret for the key; the old one is refused from now on. A key with the
        `platform` scope is rotated only by the operator."""
        response.headers["Cache-Control"] = NO_STORE
        async with identity_transaction(identity) as session:
            key = await _key(session, key_id, caller, for_update=True, changing=True)
            if key.status_at(datetime.now(UTC)) != "active":
                raise ProblemError(
                    409, "Key cannot be rotated", "It is revoked or expired: create a new one."
                )
            secret = await keys.rotate_key(session, key)
            return IssuedKey(**KeyView.of(key).model_dump(), secret=secret)

    @router.delete("/{key_id}", status_code=204, openapi_extra=documented(Action.MANAGE_KEYS))
    async def revoke_key(key_id: uuid.UUID, caller: AdminDep) -> Response:
        """Revokes the key: refused from its next call on. Revoking again changes nothing.
        A key with the `platform` scope is revoked only by the operator."""
        async with identity_transaction(identity) as session:
            key = await _key(session, key_id, caller, for_update=True, changing=True)
            await keys.revoke_key(session, key)
        return Response(status_code=204)

    return router


@contextlib.asynccontextmanager
async def identity_transaction(
    identity: async_sessionmaker[AsyncSession],
) -> AsyncIterator[AsyncSession]:
    """The routes' unit of work. Keys live in the identity database that every authenticating
    service reads, not in the request-api's own, so `tenant_transaction` does not apply; each
    query names the caller's tenant instead."""
    async with identity() as session, session.begin():
        yield session


async def _key(
    session: AsyncSession,
    key_id: uuid.UUID,
    caller: Caller,
    *,
    for_update: bool = False,
    changing: bool = False,
) -> ApiKey:
    key = await keys.get_key(session, key_id, tenant=caller.tenant, for_update=for_update)
    if key is None:
        raise ProblemError(404, "Key not found")
    if changing and PLATFORM in key.scopes:
        require(caller, Action.MANAGE_OPERATOR_KEYS)
    return key
