"""The auditor records every event of every topic, whatever its type."""

from __future__ import annotations

from opentelemetry import trace

from auditor import chain, repository
from auditor.models import AuditRecord
from events import Envelope, HandlerContext, Router
from events.topics import EVENT_TOPICS

router = Router()


@router.on_every_envelope(*EVENT_TOPICS)
async def record_event(envelope: Envelope, ctx: HandlerContext[None]) -> None:
    span_context = trace.get_current_span().get_span_context()
    stated = envelope.data.get("tenant")
    tenant = await repository.tenant_of(
        ctx.session, envelope.subject, stated if isinstance(stated, str) else None
    )
    record = AuditRecord(
        event_id=envelope.id,
        event_type=envelope.type,
        source=envelope.source,
        subject=envelope.subject,
        tenant=tenant,
        occurred_at=envelope.time,
        trace_id=f"{span_context.trace_id:032x}" if span_context.is_valid else None,
        envelope=envelope.model_dump(mode="json"),
    )
    record.prev_hash = await repository.last_hash(ctx.session)
    record.hash = chain.record_hash(record.prev_hash, repository.content_of(record))
    repository.append(ctx.session, record)
