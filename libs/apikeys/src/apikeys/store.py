"""Storage of API keys. The plaintext is shown once, at creation; only its SHA-256 is kept.

A 256-bit random secret needs no slow hash: it cannot be guessed, only stolen, and a stolen
hash does not give the key back.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from datetime import UTC, datetime

from sqlalchemy import DateTime, MetaData, String, func, select, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

KEY_PREFIX = "prov_"
SCHEMA_LOCK = 0x0A91_CE75


class Base(DeclarativeBase):
    metadata = MetaData()


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(200))
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scopes: Mapped[list[str]] = mapped_column(ARRAY(String(50)))
    # Whose resources the key's holder acts on, and what they may do there.
    tenant: Mapped[str] = mapped_column(String(100), default="default")
    roles: Mapped[list[str]] = mapped_column(ARRAY(String(50)), default=list)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


async def ensure_schema(engine: AsyncEngine) -> None:
    async with engine.begin() as connection:
        await connection.execute(text(f"SELECT pg_advisory_xact_lock({SCHEMA_LOCK})"))
        await connection.run_sync(Base.metadata.create_all)


async def create_key(
    session: AsyncSession,
    *,
    name: str,
    scopes: list[str],
    tenant: str = "default",
    roles: list[str] | None = None,
) -> str:
    """Store a new key and return its plaintext, which is never stored nor shown again."""
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    session.add(
        ApiKey(
            name=name,
            secret_hash=_hash(secret),
            scopes=scopes,
            tenant=tenant,
            roles=roles if roles is not None else ["requester"],
        )
    )
    await session.flush()
    return secret


async def verify_key(session: AsyncSession, presented: str) -> ApiKey | None:
    if not presented.startswith(KEY_PREFIX) or len(presented) > 200:
        return None
    digest = _hash(presented)
    key = await session.scalar(select(ApiKey).where(ApiKey.secret_hash == digest))
    if key is None or not hmac.compare_digest(key.secret_hash, digest):
        return None
    now = datetime.now(UTC)
    if key.revoked_at is not None or (key.expires_at is not None and key.expires_at <= now):
        return None
    return key
