"""Every query of the journal, the webhook subscriptions and their deliveries."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, delete, exists, func, literal_column, select, tuple_
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from request_api.webhooks.models import (
    Activity,
    FanOutCursor,
    WebhookDelivery,
    WebhookSubscription,
)

FAN_OUT = "fan-out"


async def add_subscription(
    session: AsyncSession, subscription_id: uuid.UUID, **columns: Any
) -> WebhookSubscription:
    subscription = WebhookSubscription(id=subscription_id, **columns)
    session.add(subscription)
    await session.flush()
    await session.refresh(subscription)
    return subscription


async def list_subscriptions(session: AsyncSession, *, tenant: str) -> list[WebhookSubscription]:
    found = await session.scalars(
        select(WebhookSubscription)
        .where(WebhookSubscription.tenant == tenant)
        .order_by(WebhookSubscription.created_at)
    )
    return list(found.all())


async def get_subscription(
    session: AsyncSession, subscription_id: uuid.UUID, *, tenant: str
) -> WebhookSubscription | None:
    return await session.scalar(
        select(WebhookSubscription).where(
            WebhookSubscription.id == subscription_id, WebhookSubscription.tenant == tenant
        )
    )


async def delete_subscription(
    session: AsyncSession, subscription_id: uuid.UUID, *, tenant: str
) -> bool:
    deleted = await session.execute(
        delete(WebhookSubscription).where(
            WebhookSubscription.id == subscription_id, WebhookSubscription.tenant == tenant
        )
    )
    return bool(deleted.rowcount)  # type: ignore[attr-defined]


async def journal_of_request(
    session: AsyncSession, request_id: uuid.UUID, *, tenant: str, after_seq: int, limit: int = 100
) -> list[Activity]:
    found = await session.scalars(
        select(Activity)
        .where(
            Activity.request_id == request_id,
            Activity.tenant == tenant,
            Activity.seq > after_seq,
        )
        .order_by(Activity.seq)
        .limit(limit)
    )
    return list(found.all())


async def claim_fan_out_cursor(session: AsyncSession) -> FanOutCursor | None:
    """The cursor, locked; None while another replica fans out."""
    await session.execute(
        insert(FanOutCursor).values(name=FAN_OUT, last_txid=0, last_seq=0).on_conflict_do_nothing()
    )
    return await session.scalar(
        select(FanOutCursor).where(FanOutCursor.name == FAN_OUT).with_for_update(skip_locked=True)
    )


async def journal_after(
    session: AsyncSession, cursor: FanOutCursor, *, limit: int
) -> list[Activity]:
    """Journal rows past the cursor, of transactions that have all ended, in (txid, seq) order.

    Sequence numbers are taken at insert but become visible at commit, so a slow transaction
    can commit seq 10 after seq 11 was read: a cursor on seq alone would skip it. Every row of
    a transaction older than the snapshot's xmin is final, so nothing can appear behind the
    cursor any more."""
    settled_before = literal_column(
        "pg_snapshot_xmin(pg_current_snapshot())::text::bigint", BigInteger
    )
    found = await session.scalars(
        select(Activity)
        .where(
            tuple_(Activity.txid, Activity.seq) > tuple_(cursor.last_txid, cursor.last_seq),
            Activity.txid < settled_before,
        )
        .order_by(Activity.txid, Activity.seq)
        .limit(limit)
    )
    return list(found.all())


async def enabled_subscriptions(
    session: AsyncSession, tenants: Sequence[str]
) -> list[WebhookSubscription]:
    found = await session.scalars(
        select(WebhookSubscription).where(
            WebhookSubscription.tenant.in_(tenants), WebhookSubscription.enabled.is_(True)
        )
    )
    return list(found.all())


async def add_deliveries(session: AsyncSession, deliveries: list[dict[str, Any]]) -> None:
    if deliveries:
        await session.execute(insert(WebhookDelivery).values(deliveries).on_conflict_do_nothing())


async def due_deliveries(
    session: AsyncSession, *, now: datetime, limit: int
) -> list[tuple[WebhookDelivery, Activity, WebhookSubscription]]:
    """Pending deliveries whose time has come, claimed: another replica skips them."""
    rows = await session.execute(
        select(WebhookDelivery, Activity, WebhookSubscription)
        .join(Activity, Activity.seq == WebhookDelivery.activity_seq)
        .join(WebhookSubscription, WebhookSubscription.id == WebhookDelivery.subscription_id)
        .where(
            WebhookDelivery.status == "pending",
            WebhookDelivery.next_attempt_at <= now,
            WebhookSubscription.enabled.is_(True),
        )
        .order_by(WebhookDelivery.next_attempt_at)
        .limit(limit)
        .with_for_update(of=WebhookDelivery, skip_locked=True)
    )
    return [(delivery, activity, subscription) for delivery, activity, subscription in rows]


async def deliveries_of(
    session: AsyncSession,
    subscription_id: uuid.UUID,
    *,
    tenant: str,
    status: str | None,
    limit: int,
) -> list[tuple[WebhookDelivery, uuid.UUID]]:
    """The newest deliveries of a subscription, each with its event's id."""
    query = (
        select(WebhookDelivery, Activity.id)
        .join(Activity, Activity.seq == WebhookDelivery.activity_seq)
        .where(
            WebhookDelivery.subscription_id == subscription_id,
            WebhookDelivery.tenant == tenant,
        )
        .order_by(WebhookDelivery.activity_seq.desc())
        .limit(limit)
    )
    if status is not None:
        query = query.where(WebhookDelivery.status == status)
    return [(delivery, event_id) for delivery, event_id in await session.execute(query)]


async def get_delivery(
    session: AsyncSession, subscription_id: uuid.UUID, delivery_id: uuid.UUID, *, tenant: str
) -> tuple[WebhookDelivery, uuid.UUID] | None:
    """A delivery with its event's id, locked for a change of its state."""
    row = (
        await session.execute(
            select(WebhookDelivery, Activity.id)
            .join(Activity, Activity.seq == WebhookDelivery.activity_seq)
            .where(
                WebhookDelivery.id == delivery_id,
                WebhookDelivery.subscription_id == subscription_id,
                WebhookDelivery.tenant == tenant,
            )
            .with_for_update(of=WebhookDelivery)
        )
    ).first()
    return None if row is None else (row[0], row[1])


async def purge_before(session: AsyncSession, cutoff: datetime) -> None:
    """Finished deliveries, then journal rows that are fanned out and owed to nobody, from
    before `cutoff`: the journal is a feed, not the record (the auditor keeps that)."""
    await session.execute(
        delete(WebhookDelivery).where(
            WebhookDelivery.status != "pending", WebhookDelivery.created_at < cutoff
        )
    )
    fanned_out = select(FanOutCursor.last_txid).where(FanOutCursor.name == FAN_OUT)
    await session.execute(
        delete(Activity).where(
            Activity.occurred_at < cutoff,
            Activity.txid <= func.coalesce(fanned_out.scalar_subquery(), 0),
            ~exists().where(WebhookDelivery.activity_seq == Activity.seq),
        )
    )
