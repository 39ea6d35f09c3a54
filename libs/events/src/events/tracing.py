"""Tracing: one trace per request, across services, carried as W3C trace context in Kafka headers.

Configured by the standard `OTEL_*` variables (service name and resource attributes, sampler,
OTLP endpoint and headers, batch delays, `OTEL_SDK_DISABLED`), plus `TRACES_DIR` for JSON lines.
Each runtime has a TracerProvider of its own, not the global one (tests run several runtimes in
one process), so instrumentation is applied per object (an app, a client, an engine) with that
provider, never by patching libraries for the whole process.

Kafka is traced by the runtime itself, not by the aiokafka instrumentation: the relay's publish
span is the child of the transaction that staged the message (its context is stored in the
outbox), which the instrumentation's send span cannot know, and two propagations writing the
same `traceparent` header would compete.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.sdk.resources import SERVICE_NAME, OTELResourceDetector, Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import AttributeValue

if TYPE_CHECKING:
    import asyncio

    import httpx
    from fastapi import FastAPI
    from sqlalchemy.engine import Engine
    from sqlalchemy.ext.asyncio import AsyncEngine

_propagator = TraceContextTextMapPropagator()

Headers = list[tuple[str, str]]

# Probes and scrapes every few seconds would bury the requests.
DEFAULT_EXCLUDED_URLS = "/healthz,/readyz,/metrics"
OTLP_ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")


def create_tracer_provider(service: str, traces_dir: Path | None) -> TracerProvider:
    """The service's provider: spans go over OTLP/HTTP when an endpoint is configured, and as
    JSON lines to `<traces_dir>/<service>.jsonl` when a directory is set (both if both)."""
    # The instrumentations read it once: current HTTP and database conventions unless chosen.
    os.environ.setdefault("OTEL_SEMCONV_STABILITY_OPT_IN", "http,database")
    # OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES win over the default name.
    resource = Resource.create({SERVICE_NAME: service}).merge(OTELResourceDetector().detect())
    provider = TracerProvider(resource=resource)  # sampler: OTEL_TRACES_SAMPLER(_ARG)
    if _disabled():
        return provider
    if any(os.environ.get(name) for name in OTLP_ENDPOINT_VARIABLES):
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    if traces_dir is not None:
        exporter = JsonLinesExporter(traces_dir / f"{service}.jsonl")
        provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def _disabled() -> bool:
    return os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true"


class JsonLinesExporter(SpanExporter):
    """One span a line, appended with one write each: replicas sharing a file never interleave
    their lines, and nothing is lost when no collector runs."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._fd < 0:
            return SpanExportResult.FAILURE
        for span in spans:
            os.write(self._fd, (span.to_json(indent=None) + "\n").encode())
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def tracer_of(provider: TracerProvider) -> trace.Tracer:
    return provider.get_tracer("provisioning.events")


def instrument_app(app: FastAPI, provider: TracerProvider) -> None:
    """A server span per HTTP request (HTTP semantic conventions), joining the caller's trace
    when it sends a `traceparent`."""
    excluded = (
        os.environ.get("OTEL_PYTHON_FASTAPI_EXCLUDED_URLS")
        or os.environ.get("OTEL_PYTHON_EXCLUDED_URLS")
        or DEFAULT_EXCLUDED_URLS
    )
    FastAPIInstrumentor.instrument_app(
        app,
        tracer_provider=provider,
        excluded_urls=excluded,
        # One span per request, not one per ASGI message of its body.
        exclude_spans=["receive", "send"],
    )


def instrument_http_client(client: httpx.AsyncClient, provider: TracerProvider) -> None:
    """A client span per outgoing call, its context sent as `traceparent`. Headers are not
    recorded (unless OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_* asks)."""
    HTTPXClientInstrumentor.instrument_client(client, tracer_provider=provider)


def instrument_engine(engine: AsyncEngine | Engine, provider: TracerProvider) -> None:
    """A client span per SQL statement, with its text as written (placeholders, never the bound
    values), inside traced work only.

    Applied to this engine alone with `EngineTracer`, the listener the SQLAlchemy
    instrumentation itself attaches: `SQLAlchemyInstrumentor().instrument()` would also patch
    `create_engine` and `Engine.connect` for the whole process, once, with the first runtime's
    provider (and refuses SQLAlchemy 2.1 unless its dependency check is skipped).
    """
    sync_engine = getattr(engine, "sync_engine", engine)
    connections = NoOpMeterProvider().get_meter(__name__).create_up_down_counter("unused")
    tracer = _ChildSpansOnly(provider.get_tracer("provisioning.sql"))
    EngineTracer(tracer, sync_engine, connections)  # type: ignore[no-untyped-call]


class _ChildSpansOnly(trace.Tracer):
    """Queries outside any span (the relay's polls, metrics refreshes) would make a root span
    each, several a second: only those inside traced work are recorded."""

    def __init__(self, tracer: trace.Tracer) -> None:
        self._tracer = tracer

    def start_span(
        self, name: str, context: otel_context.Context | None = None, *args: Any, **kwargs: Any
    ) -> Span:
        if not trace.get_current_span(context).get_span_context().is_valid:
            return trace.INVALID_SPAN
        return self._tracer.start_span(name, context, *args, **kwargs)

    def start_as_current_span(self, *args: Any, **kwargs: Any) -> Any:
        return self._tracer.start_as_current_span(*args, **kwargs)


def request_attributes(request_id: str, data: Mapping[str, Any]) -> dict[str, AttributeValue]:
    """`request.id`, and `tenant.id` and `catalog.item` where the event carries them."""
    attributes: dict[str, AttributeValue] = {"request.id": request_id}
    for name, field in (("tenant.id", "tenant"), ("catalog.item", "catalog_item")):
        if isinstance(data.get(field), str):
            attributes[name] = data[field]
    return attributes


def message_attributes(topic: str, key: bytes | None) -> dict[str, AttributeValue]:
    """Messaging semantic conventions shared by the publish and the process span."""
    attributes: dict[str, AttributeValue] = {
        "messaging.system": "kafka",
        "messaging.destination.name": topic,
    }
    if key is not None:
        attributes["messaging.kafka.message.key"] = key.decode(errors="replace")
    return attributes


def publish_attributes(topic: str, key: bytes | None, value: bytes) -> dict[str, AttributeValue]:
    """For the relay's publish span: the envelope's id and request, read back from the staged
    bytes (a dead letter may not be an envelope at all)."""
    attributes = {
        **message_attributes(topic, key),
        "messaging.operation.type": "send",
        "messaging.operation.name": "publish",
    }
    try:
        envelope = json.loads(value)
        attributes["messaging.message.id"] = str(envelope["id"])
        attributes["cloudevents.event_type"] = str(envelope["type"])
        attributes.update(request_attributes(str(envelope["subject"]), envelope["data"]))
    except (ValueError, TypeError, KeyError):
        pass
    return attributes


@contextlib.asynccontextmanager
async def batch_span(
    tracer: trace.Tracer,
    topic: str,
    partition: int,
    headers: Sequence[Headers],
    *,
    group: str,
) -> AsyncIterator[Span]:
    """The span of a batch's transaction, linked to every message's context. Within the trace
    of its messages when they all belong to one; its own trace when the batch mixes requests,
    since a span has one parent."""
    contexts = [extract(h) for h in headers]
    senders = [trace.get_current_span(c).get_span_context() for c in contexts]
    one_trace = len({s.trace_id for s in senders}) == 1 and all(s.is_valid for s in senders)
    with tracer.start_as_current_span(
        f"process {topic}",
        context=contexts[0] if one_trace else otel_context.Context(),
        kind=SpanKind.CONSUMER,
        links=[Link(s) for s in senders if s.is_valid],
        attributes={
            **message_attributes(topic, None),
            "messaging.operation.type": "process",
            "messaging.operation.name": "process",
            "messaging.destination.partition.id": str(partition),
            "messaging.consumer.group.name": group,
            "messaging.batch.message_count": len(headers),
        },
    ) as span:
        yield span


def end_on_delivery(span: Span, delivery: asyncio.Future[Any]) -> None:
    """End a publish span when the broker has acknowledged the message (or refused it)."""
    if delivery.cancelled():
        span.set_status(Status(StatusCode.ERROR, "cancelled"))
    elif (error := delivery.exception()) is not None:
        span.record_exception(error)
        span.set_status(Status(StatusCode.ERROR, type(error).__name__))
    else:
        metadata = delivery.result()
        span.set_attribute("messaging.destination.partition.id", str(metadata.partition))
        span.set_attribute("messaging.kafka.offset", metadata.offset)
    span.end()


def inject(headers: Headers | None = None, span: Span | None = None) -> Headers:
    """The trace context of `span` (default: the current one) as (name, value) pairs."""
    carrier: dict[str, str] = {}
    _propagator.inject(carrier, trace.set_span_in_context(span) if span is not None else None)
    return [*(headers or []), *carrier.items()]


def extract(headers: Iterable[tuple[str, str]]) -> otel_context.Context:
    carrier = {name: value for name, value in headers if name in ("traceparent", "tracestate")}
    return _propagator.extract(carrier)


def kafka_headers(headers: Sequence[tuple[str, str]]) -> list[tuple[str, bytes]]:
    return [(name, value.encode()) for name, value in headers]


def decode_kafka_headers(headers: Sequence[tuple[str, bytes]] | None) -> Headers:
    decoded: Headers = []
    for name, value in headers or ():
        try:
            decoded.append((name, value.decode()))
        except (UnicodeDecodeError, AttributeError):
            continue  # a header we cannot read carries nothing we need
    return decoded
