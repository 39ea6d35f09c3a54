"""The view of an audit record that the pure folds read (a request's timeline, a resource's
state, compliance reports): its facts and its event's data, with secrets masked again."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from auditor import facts
from auditor.models import AuditRecord


@dataclass(frozen=True)
class Entry:
    """What the folds (timeline, resource state, reports) read of an audit record."""

    seq: int
    event_type: str
    occurred_at: datetime
    service: str = ""
    step: str = "other"
    outcome: str = "recorded"
    event_id: str = ""
    tenant: str | None = None
    request_id: str | None = None
    resource_id: str | None = None
    actor: str | None = None
    on_behalf_of: str | None = None
    reason: str | None = None
    before: str | None = None
    after: str | None = None
    trace_id: str | None = None
    # The event's data as the record keeps it (secrets masked).
    data: Mapping[str, Any] = field(default_factory=dict)


def entry_of(record: AuditRecord) -> Entry:
    """The record as the folds read it; its data masked again, whatever it holds."""
    envelope = record.envelope if isinstance(record.envelope, dict) else {}
    data = envelope.get("data")
    return Entry(
        seq=record.seq,
        event_id=str(record.event_id),
        event_type=record.event_type,
        occurred_at=record.occurred_at,
        service=record.service,
        step=record.step,
        outcome=record.outcome,
        tenant=record.tenant,
        request_id=record.request_id,
        resource_id=record.resource_id,
        actor=record.actor,
        on_behalf_of=record.on_behalf_of,
        reason=record.reason,
        before=record.before,
        after=record.after,
        trace_id=record.trace_id,
        data=facts.redacted(data) if isinstance(data, dict) else {},
    )
