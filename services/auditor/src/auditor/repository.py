"""Every query of the auditor."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from auditor.chain import GENESIS, ChainedRecord
from auditor.models import AuditRecord, Checkpoint

CHAIN_LOCK = 0x0A0D_17C4
_TAIL = "audit_chain_tail"
_TENANTS = "audit_tenants"


def content_of(record: AuditRecord) -> dict[str, Any]:
    """What the leaf and the link cover: everything about the record but its place in the
    chain (rebuilt from the row, so a verifier can recompute it)."""
    return {
        "event_id": str(record.event_id),
        "event_type": record.event_type,
        "source": record.source,
        "subject": record.subject,
        "tenant": record.tenant,
        "occurred_at": _utc(record.occurred_at),
        "recorded_at": _utc(record.recorded_at),
        "trace_id": record.trace_id,
        "service": record.service,
        "actor": record.actor,
        "on_behalf_of": record.on_behalf_of,
        "request_id": record.request_id,
        "resource_id": record.resource_id,
        "step": record.step,
        "outcome": record.outcome,
        "reason": record.reason,
        "before": record.before,
        "after": record.after,
        "envelope": record.envelope,
    }


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


async def last_hash(session: AsyncSession) -> str:
    """The chain's tail, read once per transaction: appends are serialised by a lock held to
    commit, so within the transaction only our own appends move the tail."""
    tail = session.info.get(_TAIL)
    if tail is None:
        await session.execute(text(f"SELECT pg_advisory_xact_lock({CHAIN_LOCK})"))
        found = await session.scalar(
            select(AuditRecord.hash).order_by(AuditRecord.seq.desc()).limit(1)
        )
        tail = found or GENESIS
    return str(tail)


def append(session: AsyncSession, record: AuditRecord) -> None:
    """Queue the record; a batch's records go to the database in one multi-row INSERT, in
    the order they were appended (which is the order of their sequence numbers)."""
    session.add(record)
    session.info[_TAIL] = record.hash


async def tenant_of(session: AsyncSession, subject: str, stated: str | None) -> str | None:
    """The tenant an event states, else the one its request's earlier records had (an event
    such as `allocation.failed` does not repeat it). Remembered for the batch, whose records
    are not inserted yet."""
    known: dict[str, str | None] = session.info.setdefault(_TENANTS, {})
    if stated is None and subject not in known:
        with session.no_autoflush:
            known[subject] = await session.scalar(
                select(AuditRecord.tenant)
                .where(AuditRecord.subject == subject, AuditRecord.tenant.is_not(None))
                .limit(1)
            )
    elif stated is not None:
        known[subject] = stated
    return known.get(subject)


async def records_of_request(session: AsyncSession, subject: str) -> list[AuditRecord]:
    return list(
        (
            await session.scalars(
                select(AuditRecord).where(AuditRecord.subject == subject).order_by(AuditRecord.seq)
            )
        ).all()
    )


async def chain_pages(
    session: AsyncSession, page: int = 2000
) -> AsyncIterator[list[ChainedRecord]]:
    """The whole chain in sequence order, a page at a time: it may not fit in memory."""
    after = 0
    while True:
        rows = (
            await session.scalars(
                select(AuditRecord)
                .where(AuditRecord.seq > after)
                .order_by(AuditRecord.seq)
                .limit(page)
            )
        ).all()
        if not rows:
            return
        yield [ChainedRecord(r.seq, content_of(r), r.leaf, r.prev_hash, r.hash) for r in rows]
        after = rows[-1].seq
        session.expunge_all()  # the rows are done with: keep the session's memory flat


async def last_checkpoint(session: AsyncSession) -> Checkpoint | None:
    return await session.scalar(select(Checkpoint).order_by(Checkpoint.last_seq.desc()).limit(1))


async def leaves_after(session: AsyncSession, seq: int, *, limit: int) -> list[tuple[int, str]]:
    """(seq, leaf) of the records after `seq`, in order: what the next checkpoint seals."""
    rows = await session.execute(
        select(AuditRecord.seq, AuditRecord.leaf)
        .where(AuditRecord.seq > seq)
        .order_by(AuditRecord.seq)
        .limit(limit)
    )
    return [(row.seq, row.leaf) for row in rows]


async def oldest_recorded_after(session: AsyncSession, seq: int) -> datetime | None:
    return await session.scalar(
        select(AuditRecord.recorded_at)
        .where(AuditRecord.seq > seq)
        .order_by(AuditRecord.seq)
        .limit(1)
    )


async def leaves_between(session: AsyncSession, first: int, last: int) -> list[tuple[int, str]]:
    rows = await session.execute(
        select(AuditRecord.seq, AuditRecord.leaf)
        .where(AuditRecord.seq.between(first, last))
        .order_by(AuditRecord.seq)
    )
    return [(row.seq, row.leaf) for row in rows]


async def checkpoint_covering(session: AsyncSession, seq: int) -> Checkpoint | None:
    return await session.scalar(
        select(Checkpoint).where(Checkpoint.first_seq <= seq, Checkpoint.last_seq >= seq)
    )


async def get_record(session: AsyncSession, seq: int) -> AuditRecord | None:
    return await session.get(AuditRecord, seq)


async def records_between(session: AsyncSession, first: int, last: int) -> list[AuditRecord]:
    return list(
        (
            await session.scalars(
                select(AuditRecord)
                .where(AuditRecord.seq.between(first, last))
                .order_by(AuditRecord.seq)
            )
        ).all()
    )


async def count_records(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.count()).select_from(AuditRecord)) or 0)


async def tail_seq(session: AsyncSession) -> int:
    found = await session.scalar(select(AuditRecord.seq).order_by(AuditRecord.seq.desc()).limit(1))
    return int(found or 0)


async def checkpoints_after(session: AsyncSession, last_seq: int) -> list[Checkpoint]:
    return list(
        (
            await session.scalars(
                select(Checkpoint)
                .where(Checkpoint.last_seq > last_seq)
                .order_by(Checkpoint.last_seq)
            )
        ).all()
    )


async def find_records(
    session: AsyncSession,
    *,
    request_id: str | None = None,
    resource_id: str | None = None,
    person: str | None = None,
    event_type: str | None = None,
    occurred_after: datetime | None = None,
    occurred_before: datetime | None = None,
    after_seq: int = 0,
    limit: int,
) -> list[AuditRecord]:
    """Records in sequence order after `after_seq`, narrowed by whichever filters are given.
    The tenant is the transaction's (row-level security). A person is whoever acted or was
    acted for."""
    query = select(AuditRecord).where(AuditRecord.seq > after_seq)
    if request_id is not None:
        query = query.where(AuditRecord.request_id == request_id)
    if resource_id is not None:
        query = query.where(AuditRecord.resource_id == resource_id)
    if person is not None:
        query = query.where((AuditRecord.actor == person) | (AuditRecord.on_behalf_of == person))
    if event_type is not None:
        query = query.where(AuditRecord.event_type == event_type)
    if occurred_after is not None:
        query = query.where(AuditRecord.occurred_at >= occurred_after)
    if occurred_before is not None:
        query = query.where(AuditRecord.occurred_at < occurred_before)
    return list((await session.scalars(query.order_by(AuditRecord.seq).limit(limit))).all())


async def records_of_resource(
    session: AsyncSession, resource_id: str, *, until: datetime
) -> list[AuditRecord]:
    """The records naming the resource up to `until`, with every other record of the
    requests that touched it (an undo's events do not name the resource), in sequence order."""
    touching = (
        select(AuditRecord.request_id)
        .where(AuditRecord.resource_id == resource_id, AuditRecord.occurred_at <= until)
        .distinct()
    )
    query = select(AuditRecord).where(
        or_(AuditRecord.resource_id == resource_id, AuditRecord.request_id.in_(touching)),
        AuditRecord.occurred_at <= until,
    )
    return list((await session.scalars(query.order_by(AuditRecord.seq))).all())


async def history_before(
    session: AsyncSession, before: datetime, *, page: int = 1000
) -> AsyncIterator[AuditRecord]:
    """Every record that occurred before `before`, in sequence order, read a page at a time
    (a tenant's history can be long; the transaction's tenant bounds it). Reads of the audit
    (`audit.read`) are left out: they say who looked, not what happened."""
    after = 0
    while True:
        rows = (
            await session.scalars(
                select(AuditRecord)
                .where(
                    AuditRecord.seq > after,
                    AuditRecord.occurred_at < before,
                    AuditRecord.event_type != "audit.read",
                )
                .order_by(AuditRecord.seq)
                .limit(page)
            )
        ).all()
        for row in rows:
            yield row
        if len(rows) < page:
            return
        after = rows[-1].seq
