"""Storage of API keys, and every query on them. The plaintext is shown once, at creation or
rotation; only its SHA-256 is kept. Queries that act for an admin name the admin's tenant, so
another tenant's key is simply not found. Nothing here commits: the caller owns the
transaction."""

from __future__ import annotations

import hmac
import uuid
from datetime import UTC, datetime
from typing import Literal

from sqlalchemy import DateTime, MetaData, String, func, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from apikeys.roles import unknown_roles
from apikeys.secret import digest, hint, is_well_formed, new_secret

KeyStatus = Literal["active", "expired", "revoked"]


class Base(DeclarativeBase):
    """The keys' tables, in the `identity` database. Their owner's migrations make them (the
    request-api's `identity_migrations`), never this library."""

    metadata = MetaData()


class ApiKey(Base):
    __tablename__ = "api_keys"
    # created_at comes back with the INSERT: no lazy load after a flush.
    __mapper_args__ = {"eager_defaults": True}

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    # The principal: who acts with this key (a person or a system).
    name: Mapped[str] = mapped_column(String(200))
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # Enough of the key to tell it apart in a list, never enough to use it.
    hint: Mapped[str] = mapped_column(String(20), default="")
    scopes: Mapped[list[str]] = mapped_column(ARRAY(String(50)))
    # Whose resources the key's holder acts on, and what they may do there.
    tenant: Mapped[str] = mapped_column(String(100), default="default", index=True)
    roles: Mapped[list[str]] = mapped_column(ARRAY(String(50)), default=list)
    # Its own rate limit ("5/second"), else the service's default.
    rate_limit: Mapped[str | None] = mapped_column(String(50))
    created_by: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    rotated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    def status_at(self, now: datetime) -> KeyStatus:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active"


def create_identity_engine(url: str, *, pool_size: int = 2) -> AsyncEngine:
    """The keys' database as a service reaches it: connections checked before use, so that a
    database restart costs a reconnect, not a failed call; values kept out of errors."""
    return create_async_engine(url, pool_size=pool_size, pool_pre_ping=True, hide_parameters=True)


async def issue_key(
    session: AsyncSession,
    *,
    name: str,
    scopes: list[str],
    tenant: str = "default",
    roles: list[str] | None = None,
    expires_at: datetime | None = None,
    rate_limit: str | None = None,
    created_by: str | None = None,
) -> tuple[ApiKey, str]:
    """Store a new key; return it and its plaintext, which is never stored nor shown again."""
    roles = roles if roles is not None else ["requester"]
    if unknown := unknown_roles(roles):
        raise ValueError(f"unknown roles: {', '.join(unknown)}")
    secret = new_secret()
    key = ApiKey(
        name=name,
        secret_hash=digest(secret),
        hint=hint(secret),
        scopes=scopes,
        tenant=tenant,
        roles=roles,
        expires_at=expires_at,
        rate_limit=rate_limit,
        created_by=created_by,
    )
    session.add(key)
    await session.flush()
    return key, secret


async def create_key(
    session: AsyncSession,
    *,
    name: str,
    scopes: list[str],
    tenant: str = "default",
    roles: list[str] | None = None,
) -> str:
    """A new key's plaintext (for bootstraps and tests, which need nothing else)."""
    _, secret = await issue_key(session, name=name, scopes=scopes, tenant=tenant, roles=roles)
    return secret


async def verify_key(session: AsyncSession, presented: str) -> ApiKey | None:
    """The active key `presented` is, or None. A malformed key costs no query."""
    if not is_well_formed(presented):
        return None
    presented_hash = digest(presented)
    key = await session.scalar(select(ApiKey).where(ApiKey.secret_hash == presented_hash))
    if key is None or not hmac.compare_digest(key.secret_hash, presented_hash):
        return None
    return key if key.status_at(datetime.now(UTC)) == "active" else None


async def list_keys(session: AsyncSession, *, tenant: str, limit: int = 500) -> list[ApiKey]:
    query = (
        select(ApiKey)
        .where(ApiKey.tenant == tenant)
        .order_by(ApiKey.created_at, ApiKey.id)
        .limit(limit)
    )
    return list(await session.scalars(query))


async def get_key(
    session: AsyncSession, key_id: uuid.UUID, *, tenant: str, for_update: bool = False
) -> ApiKey | None:
    """`for_update` holds the row, so a rotation and a revocation of one key do not cross."""
    query = select(ApiKey).where(ApiKey.id == key_id, ApiKey.tenant == tenant)
    if for_update:
        query = query.with_for_update()
    return await session.scalar(query)


async def rotate_key(session: AsyncSession, key: ApiKey) -> str:
    """A new secret for `key`; the old one stops verifying as soon as this commits."""
    secret = new_secret()
    key.secret_hash = digest(secret)
    key.hint = hint(secret)
    key.rotated_at = datetime.now(UTC)
    await session.flush()
    return secret


async def revoke_key(session: AsyncSession, key: ApiKey) -> None:
    if key.revoked_at is None:
        key.revoked_at = datetime.now(UTC)
        await session.flush()
