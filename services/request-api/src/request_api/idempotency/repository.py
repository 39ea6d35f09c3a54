"""Every query about idempotency keys."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import and_, delete, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from request_api.idempotency.models import IdempotencyRecord
from request_api.idempotency.rules import KeyOf, Stored


def _is(of: KeyOf) -> ColumnElement[bool]:
    return and_(
        IdempotencyRecord.tenant == of.tenant,
        IdempotencyRecord.caller == of.caller,
        IdempotencyRecord.key == of.key,
    )


async def claim_new(
    session: AsyncSession,
    of: KeyOf,
    *,
    fingerprint: str,
    now: datetime,
    ttl: timedelta,
) -> bool:
    """Insert the key in progress; False if it exists (then read it with `locked`)."""
    inserted = await session.scalar(
        insert(IdempotencyRecord)
        .values(
            tenant=of.tenant,
            caller=of.caller,
            key=of.key,
            fingerprint=fingerprint,
            state="in_progress",
            locked_at=now,
            expires_at=now + ttl,
        )
        .on_conflict_do_nothing()
        .returning(IdempotencyRecord.key)
    )
    return inserted is not None


async def locked(session: AsyncSession, of: KeyOf) -> IdempotencyRecord | None:
    return await session.scalar(select(IdempotencyRecord).where(_is(of)).with_for_update())


def stored(record: IdempotencyRecord) -> Stored:
    return Stored(record.fingerprint, record.state, record.locked_at, record.expires_at)


async def restart(
    session: AsyncSession,
    of: KeyOf,
    *,
    fingerprint: str,
    now: datetime,
    ttl: timedelta,
) -> None:
    await session.execute(
        update(IdempotencyRecord)
        .where(_is(of))
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
    of: KeyOf,
    *,
    status_code: int,
    headers: dict[str, str],
    body: bytes | None,
) -> None:
    await session.execute(
        update(IdempotencyRecord)
        .where(_is(of))
        .values(state="completed", status_code=status_code, headers=headers, body=body)
    )


async def release(session: AsyncSession, of: KeyOf) -> None:
    await session.execute(delete(IdempotencyRecord).where(_is(of)))


async def purge_expired(session: AsyncSession) -> None:
    await session.execute(
        delete(IdempotencyRecord).where(IdempotencyRecord.expires_at <= func.now())
    )
