"""`python -m devstack trace <request-id>`: a request's traces from the JSON lines under
`.local/traces/`, as an indented tree with start offsets and durations: where the time went.

Each service writes its spans to `<service>.jsonl`, one OpenTelemetry span a line (exported in
batches every few seconds). A request's traces are those with a span naming it (`request.id`);
every span of those traces is shown, also those that do not name it (SQL, HTTP, driver calls).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

SQL_ATTRIBUTES = ("db.system.name", "db.system")


@dataclass(eq=False)
class Span:
    name: str
    service: str
    trace_id: str
    span_id: str
    parent_id: str | None
    kind: str
    start: datetime
    end: datetime
    attributes: dict[str, Any]
    error: str | None
    children: list[Span] = field(default_factory=list)

    @classmethod
    def from_json(cls, line: dict[str, Any]) -> Span:
        status = line.get("status") or {}
        error = None
        if status.get("status_code") == "ERROR":
            error = status.get("description") or "error"
        return cls(
            name=line["name"],
            service=line["resource"]["attributes"].get("service.name", "?"),
            trace_id=line["context"]["trace_id"],
            span_id=line["context"]["span_id"],
            parent_id=line.get("parent_id"),
            kind=str(line.get("kind", "")).removeprefix("SpanKind."),
            start=datetime.fromisoformat(line["start_time"]),
            end=datetime.fromisoformat(line["end_time"]),
            attributes=line.get("attributes") or {},
            error=error,
        )

    @property
    def duration_ms(self) -> float:
        return (self.end - self.start).total_seconds() * 1000

    @property
    def is_sql(self) -> bool:
        return any(name in self.attributes for name in SQL_ATTRIBUTES)


def read_spans(traces_dir: Path) -> list[Span]:
    """Every span in the directory's JSON lines (a line cut short by a crash is skipped)."""
    spans = []
    for path in sorted(traces_dir.glob("*.jsonl")):
        for line in path.read_text(errors="replace").splitlines():
            try:
                spans.append(Span.from_json(json.loads(line)))
            except (ValueError, KeyError, TypeError):
                continue
    return spans


def traces_of(spans: Iterable[Span], request_id: str) -> list[list[Span]]:
    """The request's traces, oldest first, each with all of its spans."""
    by_trace: dict[str, list[Span]] = defaultdict(list)
    for span in spans:
        by_trace[span.trace_id].append(span)
    ids = {
        trace_id
        for trace_id, members in by_trace.items()
        if any(s.attributes.get("request.id") == request_id for s in members)
    }
    found = [by_trace[trace_id] for trace_id in ids]
    return sorted(found, key=lambda members: min(s.start for s in members))


def roots_of(spans: list[Span]) -> list[Span]:
    """Link each span to its parent; returns those without one here (the trace's root, or a
    span whose parent was not exported)."""
    by_id = {span.span_id: span for span in spans}
    roots = []
    for span in spans:
        span.children = []
    for span in sorted(spans, key=lambda s: s.start):
        parent = by_id.get(span.parent_id) if span.parent_id else None
        if parent is None:
            roots.append(span)
        else:
            parent.children.append(span)
    return roots


def render(spans: list[Span], *, sql: bool = False) -> str:
    """One trace as text. SQL statements are summed up per parent unless `sql`."""
    roots = roots_of(spans)
    began = min(s.start for s in spans)
    ended = max(s.end for s in spans)
    services = sorted({s.service for s in spans})
    lines = [
        f"trace {spans[0].trace_id}: {len(spans)} spans, "
        f"{(ended - began).total_seconds() * 1000:.1f} ms, {', '.join(services)}",
        f"{'start ms':>10} {'took ms':>9}  {'service':<13} span",
    ]

    def show(span: Span, depth: int, parent: Span | None) -> None:
        offset = (span.start - began).total_seconds() * 1000
        lines.append(
            f"{offset:>10.1f} {span.duration_ms:>9.1f}  {span.service:<13} "
            f"{'  ' * depth}{span.name}{_details(span, parent)}"
        )
        queries = [c for c in span.children if c.is_sql and not c.children]
        if queries and not sql:
            total = sum(q.duration_ms for q in queries)
            counted = f"{len(queries)} SQL statement{'s' if len(queries) > 1 else ''}"
            lines.append(
                f"{'':>10} {total:>9.1f}  {span.service:<13} {'  ' * (depth + 1)}({counted})"
            )
        summed = set() if sql else {id(query) for query in queries}
        for child in span.children:
            if id(child) not in summed:
                show(child, depth + 1, span)

    for root in roots:
        if root.parent_id:
            lines.append(f"{'':>10} {'':>9}  {'':<13} (parent {root.parent_id} not found)")
        show(root, 0, None)
    lines += ["", "busy time of each service (its server and consumer spans):"]
    for service, total in _busy_by_service(spans).items():
        lines.append(f"  {service:<13} {total:>9.1f} ms")
    return "\n".join(lines)


def _details(span: Span, parent: Span | None) -> str:
    attributes = span.attributes
    parts = []
    if "cloudevents.event_type" in attributes:
        parts.append(str(attributes["cloudevents.event_type"]))
    if "messaging.batch.message_count" in attributes:
        count = attributes["messaging.batch.message_count"]
        parts.append(f"batch of {count}: inbox, outbox, commit")
    status = attributes.get("http.response.status_code", attributes.get("http.status_code"))
    if status is not None:
        parts.append(str(status))
    if span.kind == "CONSUMER" and parent is not None and parent.kind == "PRODUCER":
        # From the relay's send: the broker's acknowledgement may come after the delivery.
        waited = (span.start - parent.start).total_seconds() * 1000
        parts.append(f"{waited:.1f} ms after publish")
    if span.error:
        parts.append(f"ERROR {span.error}")
    return f"  [{'; '.join(parts)}]" if parts else ""


def _busy_by_service(spans: list[Span]) -> dict[str, float]:
    """Wall time covered by each service's server and consumer spans (a message's span lies
    within its batch's: overlaps count once)."""
    intervals: dict[str, list[tuple[datetime, datetime]]] = defaultdict(list)
    for span in spans:
        if span.kind in ("SERVER", "CONSUMER"):
            intervals[span.service].append((span.start, span.end))
    busy = {}
    for service, covered in intervals.items():
        total, reached = 0.0, None
        for start, end in sorted(covered):
            if reached is not None and start < reached:
                start = reached
            if end > start:
                total += (end - start).total_seconds() * 1000
            reached = max(reached or end, end)
        busy[service] = total
    return dict(sorted(busy.items(), key=lambda item: -item[1]))


def report(traces_dir: Path, request_id: str, *, sql: bool = False) -> str:
    traces = traces_of(read_spans(traces_dir), request_id)
    if not traces:
        return (
            f"no span names request {request_id} in {traces_dir} "
            "(spans are written every few seconds: try again in a moment)"
        )
    return "\n\n".join(render(spans, sql=sql) for spans in traces)
