"""The auditor records every event of every topic, whatever its type."""

from __future__ import annotations

from dataclasses import dataclass

from opentelemetry import trace

from auditor import facts, recording
from events import Envelope, HandlerContext, Router
from events.topics import EVENT_TOPICS

router = Router()


@dataclass(frozen=True)
class Deps:
    chain_key: bytes


@router.on_every_envelope(*EVENT_TOPICS)
async def record_event(envelope: Envelope, ctx: HandlerContext[Deps]) -> None:
    span_context = trace.get_current_span().get_span_context()
    stored = envelope.model_dump(mode="json")
    stored["data"] = facts.redacted(envelope.data)
    await recording.append(
        ctx.session,
        ctx.deps.chain_key,
        event_id=envelope.id,
        event_type=envelope.type,
        source=envelope.source,
        subject=envelope.subject,
        occurred_at=envelope.time,
        trace_id=f"{span_context.trace_id:032x}" if span_context.is_valid else None,
        said=facts.facts_of(
            envelope.type,
            envelope.source,
            envelope.subject,
            envelope.data,
            tenant=envelope.tenant,
        ),
        envelope=stored,
    )
