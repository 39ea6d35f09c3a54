"""Appending a record to the chain: from a consumed event, or from an audit read (reading the
record is itself recorded). The caller owns the transaction, which must see every tenant's
records (the chain's tail is global)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from auditor import chain, facts, repository
from auditor.models import AuditRecord


async def append(
    session: AsyncSession,
    chain_key: bytes,
    *,
    event_id: uuid.UUID,
    event_type: str,
    source: str,
    subject: str,
    occurred_at: datetime,
    trace_id: str | None,
    said: facts.Facts,
    envelope: dict[str, Any],
) -> AuditRecord:
    # The chain lock first: the tenant of an event that does not state it is read from the
    # request's earlier records, which a transaction appending concurrently may be writing.
    prev_hash = await repository.last_hash(session)
    record = AuditRecord(
        event_id=event_id,
        event_type=event_type,
        source=source,
        subject=subject,
        tenant=await repository.tenant_of(session, subject, said.tenant),
        occurred_at=occurred_at,
        recorded_at=datetime.now(UTC),
        trace_id=trace_id,
        service=said.service,
        actor=said.actor,
        on_behalf_of=said.on_behalf_of,
        request_id=said.request_id,
        resource_id=said.resource_id,
        step=said.step,
        outcome=said.outcome,
        reason=said.reason,
        before=said.before,
        after=said.after,
        envelope=envelope,
    )
    record.leaf = chain.leaf_of(repository.content_of(record))
    record.prev_hash = prev_hash
    record.hash = chain.link(chain_key, record.prev_hash, record.leaf)
    repository.append(session, record)
    return record


async def append_read(
    session: AsyncSession,
    chain_key: bytes,
    *,
    reader: str,
    tenant: str,
    query: dict[str, Any],
    returned: int,
    refused: bool = False,
) -> None:
    """Who read which records of the audit, and how many they got; or that they were
    refused."""
    said = facts.Facts(
        tenant=tenant,
        actor=reader,
        on_behalf_of=None,
        request_id=None,
        resource_id=None,
        step="audit",
        outcome="refused" if refused else "read",
        reason="not theirs to read" if refused else f"{returned} record(s)",
        before=None,
        after=None,
        service="auditor",
    )
    now = datetime.now(UTC)
    await append(
        session,
        chain_key,
        event_id=uuid.uuid4(),
        event_type="audit.read",
        source="auditor",
        subject=f"audit:{tenant}",
        occurred_at=now,
        trace_id=None,
        said=said,
        envelope={
            "type": "audit.read",
            "data": {"query": query, "returned": returned, "refused": refused},
        },
    )
