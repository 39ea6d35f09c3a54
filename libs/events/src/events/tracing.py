"""Tracing: one trace per request, carried as W3C trace context in Kafka headers."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import IO

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

_propagator = TraceContextTextMapPropagator()

Headers = list[tuple[str, str]]


def _one_json_line(span: ReadableSpan) -> str:
    return str(span.to_json(indent=None)) + "\n"


def create_tracer_provider(service: str, traces_dir: Path | None) -> TracerProvider:
    """Spans go to `<traces_dir>/<service>.jsonl`, one JSON object a line, when a dir is set."""
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    if traces_dir is not None:
        traces_dir.mkdir(parents=True, exist_ok=True)
        out: IO[str] = open(traces_dir / f"{service}.jsonl", "a", buffering=1)  # noqa: SIM115
        provider.add_span_processor(
            BatchSpanProcessor(ConsoleSpanExporter(out=out, formatter=_one_json_line))
        )
    return provider


def inject(headers: Headers | None = None) -> Headers:
    """The current trace context as (name, value) pairs."""
    carrier: dict[str, str] = {}
    _propagator.inject(carrier)
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


def tracer_of(provider: TracerProvider) -> trace.Tracer:
    return provider.get_tracer("provisioning.events")
