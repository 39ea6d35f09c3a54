"""The auditor records every event of every topic, whatever its type."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from opentelemetry import trace

from auditor import chain, facts, repository
from auditor.models import AuditRecord
from events import Envelope, HandlerContext, Router
from events.topics import EVENT_TOPICS

router = Router()


@dataclass(frozen=True)
class Deps:
    chain_key: bytes


@router.on_every_envelope(*EVENT_TOPICS)
async def record_event(envelope: Envelope, ctx: HandlerContext[Deps]) -> None:
    span_context = trace.get_current_span().get_span_context()
    said = facts.facts_of(envelope.type, envelope.source, envelope.subject, envelope.data)
    tenant = await repository.tenant_of(ctx.session, envelope.subject, said.tenant)
    stored = envelope.model_dump(mode="json")
    stored["data"] = facts.redacted(envelope.data)
    record = AuditRecord(
        event_id=envelope.id,
        event_type=envelope.type,
        source=envelope.source,
        subject=envelope.subject,
        tenant=tenant,
        occurred_at=envelope.time,
        recorded_at=datetime.now(UTC),
        trace_id=f"{span_context.trace_id:032x}" if span_context.is_valid else None,
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
        envelope=stored,
    )
    record.leaf = chain.leaf_of(repository.content_of(record))
    record.prev_hash = await repository.last_hash(ctx.session)
    record.hash = chain.link(ctx.deps.chain_key, record.prev_hash, record.leaf)
    repository.append(ctx.session, record)
