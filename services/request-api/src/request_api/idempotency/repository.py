"""Every query about idempotency keys."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from request_api.idempotency.models import IdempotencyRecord
from request_api.idempotency.rules import Stored


async def claim_new(
    session: AsyncSession,
    *,
    tenant: str,
    caller: str,
    key: str,
    fingerprint: str,
    now: datetime,
    ttl: timedelta,
) -> bool:
    """Insert the key in progress; False if it exists (then read it with `locked`)."""
    inserted = await session.scalar(
        insert(IdempotencyRecord)
        .values(
            tenant=tenant,
            caller=caller,
            key=key,
            fingerprint=fingerprint,
            state="in_progress",
            locked_at=now,
            expires_at=now + ttl,
        )
        .on_conflict_do_nothing()
        .returning(IdempotencyRecord.key)
    )
    return inserted is not None


async def locked(
    session: AsyncSession, *, tenant: str, caller: str, key: str
) -> IdempotencyRecord | None:
    return await session.scalar(
        select(IdempotencyRecord)
        .where(
            IdempotencyRecord.tenant == tenant,
            IdempotencyRecord.caller == caller,
            IdempotencyRecord.key == key,
        )
        .with_for_update()
    )


def stored(record: IdempotencyRecord) -> Stored:
    return Stored(record.fingerprint, record.state, record.locked_at, record.expires_at)


async def restart(
    session: AsyncSession,
    *,
    tenant: str,
    caller: str,
    key: str,
    fingerprint: str,
    now: datetime,
    ttl: timedelta,
) -> None:
    await session.execute(
        update(IdempotencyRecord)
        .where(
            IdempotencyRecord.tenant == tenant,
            IdempotencyRecord.caller == caller,
            IdempotencyRecord.key == key,
        )
        .values(
            fingerprint=fingerprint,
            state="in_progress",
            status_code=None,
            headers=None,
            body=None,
            locked_at=now,
            expires_at=now + ttl,
        )
    )


async def complete(
    session: AsyncSession,
    *,
    tenant: str,
    caller: str,
    key: str,
    status_code: int,
    headers: dict[str, str],
    body: bytes | None,
) -> None:
    await session.execute(
        update(IdempotencyRecord)
        .where(
            IdempotencyRecord.tenant == tenant,
            IdempotencyRecord.caller == caller,
            IdempotencyRecord.key == key,
        )
        .values(state="completed", status_code=status_code, headers=headers, body=body)
    )


async def release(session: AsyncSession, *, tenant: str, caller: str, key: str) -> None:
    await session.execute(
        delete(IdempotencyRecord).where(
            IdempotencyRecord.tenant == tenant,
            IdempotencyRecord.caller == caller,
            IdempotencyRecord.key == key,
        )
    )


async def purge_expired(session: AsyncSession) -> None:
    await session.execute(
        delete(IdempotencyRecord).where(IdempotencyRecord.expires_at <= func.now())
    )
