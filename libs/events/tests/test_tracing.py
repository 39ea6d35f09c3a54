"""Tracing setup: exporters chosen by OTEL_* and TRACES_DIR, and the instrumentations' spans.

Spans are read back where they really go: a local HTTP server playing the OTLP collector, the
JSON lines file, or the SDK's in-memory exporter.
"""

import json
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from sqlalchemy import create_engine, text

from events import tracing
from events.envelope import Envelope, Event

OTEL_VARIABLES = (
    "OTEL_SERVICE_NAME",
    "OTEL_RESOURCE_ATTRIBUTES",
    "OTEL_TRACES_SAMPLER",
    "OTEL_TRACES_SAMPLER_ARG",
    "OTEL_SDK_DISABLED",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_PYTHON_FASTAPI_EXCLUDED_URLS",
    "OTEL_PYTHON_EXCLUDED_URLS",
)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in OTEL_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Recorder:
    """A tiny HTTP server that answers 200 to everything and keeps what it was sent."""

    url: str
    received: list[Received] = field(default_factory=list)


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    received: list[Received] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", 0))
            self._keep(self.rfile.read(length))

        def do_GET(self) -> None:
            self._keep(b"")

        def _keep(self, body: bytes) -> None:
            headers = {name.lower(): value for name, value in self.headers.items()}
            received.append(Received(self.path, headers, body))
            self.send_response(200)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Recorder(f"http://127.0.0.1:{server.server_address[1]}", received)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def in_memory(provider: TracerProvider) -> InMemorySpanExporter:
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter


def exported_spans(recorder: Recorder) -> list[tuple[str, str]]:
    """(service.name, span name) of every span the collector received."""
    spans = []
    for received in recorder.received:
        request = ExportTraceServiceRequest.FromString(received.body)
        for resource_spans in request.resource_spans:
            attributes = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                spans += [(attributes["service.name"], s.name) for s in scope_spans.spans]
    return spans


def test_spans_go_over_otlp_when_an_endpoint_is_configured(recorder, monkeypatch):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", recorder.url)
    provider = tracing.create_tracer_provider("validator", traces_dir=None)
    with tracing.tracer_of(provider).start_as_current_span("validate"):
        pass
    provider.shutdown()  # flushes the batch

    assert [r.path for r in recorder.received] == ["/v1/traces"]
    assert recorder.received[0].headers["content-type"] == "application/x-protobuf"
    assert exported_spans(recorder) == [("validator", "validate")]


def test_the_traces_endpoint_is_used_as_it_is(recorder, monkeypatch, tmp_path):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", f"{recorder.url}/collector/spans")
    provider = tracing.create_tracer_provider("allocator", traces_dir=tmp_path)
    with tracing.tracer_of(provider).start_as_current_span("allocate"):
        pass
    provider.shutdown()

    assert [r.path for r in recorder.received] == ["/collector/spans"]
    assert exported_spans(recorder) == [("allocator", "allocate")]
    # Both, when both are configured.
    assert [s["name"] for s in json_lines(tmp_path / "allocator.jsonl")] == ["allocate"]


def json_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_without_an_endpoint_spans_are_json_lines_in_the_traces_dir(tmp_path):
    provider = tracing.create_tracer_provider("deployer", traces_dir=tmp_path / "traces")
    tracer = tracing.tracer_of(provider)
    with tracer.start_as_current_span("outer"), tracer.start_as_current_span("inner") as inner:
        inner.set_attribute("request.id", "r-1")
    provider.shutdown()

    inner_line, outer_line = json_lines(tmp_path / "traces" / "deployer.jsonl")
    assert (inner_line["name"], outer_line["name"]) == ("inner", "outer")
    assert inner_line["parent_id"] == outer_line["context"]["span_id"]
    assert outer_line["parent_id"] is None
    assert inner_line["context"]["trace_id"] == outer_line["context"]["trace_id"]
    assert inner_line["attributes"] == {"request.id": "r-1"}
    assert inner_line["resource"]["attributes"]["service.name"] == "deployer"


def test_two_providers_append_to_one_file_line_by_line(tmp_path):
    """Replicas of a service share its file: every line stays whole."""
    providers = [tracing.create_tracer_provider("auditor", tmp_path) for _ in range(2)]
    for n in range(200):
        with tracing.tracer_of(providers[n % 2]).start_as_current_span(f"span {n}"):
            pass
    for provider in providers:
        provider.shutdown()
    names = {line["name"] for line in json_lines(tmp_path / "auditor.jsonl")}
    assert names == {f"span {n}" for n in range(200)}


def test_otel_service_name_and_resource_attributes_are_honoured(tmp_path, monkeypatch):
    monkeypatch.setenv("OTEL_SERVICE_NAME", "provisioning-validator")
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment.name=ci,team=infra")
    provider = tracing.create_tracer_provider("validator", tmp_path)
    with tracing.tracer_of(provider).start_as_current_span("validate"):
        pass
    provider.shutdown()

    (line,) = json_lines(tmp_path / "validator.jsonl")
    resource = line["resource"]["attributes"]
    assert resource["service.name"] == "provisioning-validator"
    assert resource["deployment.environment.name"] == "ci" and resource["team"] == "infra"


@pytest.mark.parametrize(
    "variable, value", [("OTEL_TRACES_SAMPLER", "always_off"), ("OTEL_SDK_DISABLED", "true")]
)
def test_sampler_and_sdk_switch_come_from_the_environment(tmp_path, monkeypatch, variable, value):
    monkeypatch.setenv(variable, value)
    provider = tracing.create_tracer_provider("validator", tmp_path)
    with tracing.tracer_of(provider).start_as_current_span("validate") as span:
        assert not span.is_recording()
    provider.shutdown()
    path = tmp_path / "validator.jsonl"
    assert not path.exists() or path.read_text() == ""


def test_sql_spans_come_out_inside_traced_work_with_placeholders_only():
    """The SQLAlchemy instrumentation's listener on SQLAlchemy 2.1 (whose dependency check
    the instrumentor would fail): a span per statement, its text without the bound values."""
    provider = tracing.create_tracer_provider("validator", None)
    spans = in_memory(provider)
    engine = create_engine("sqlite://")
    tracing.instrument_engine(engine, provider)
    with engine.connect() as connection:
        connection.execute(text("SELECT :outside"), {"outside": "not traced"})
        with tracing.tracer_of(provider).start_as_current_span("handle"):
            connection.execute(text("SELECT :password"), {"password": "hunter2-canary"})
    engine.dispose()

    sql, handle = spans.get_finished_spans()
    assert handle.name == "handle"
    assert sql.kind is SpanKind.CLIENT and sql.parent is not None
    assert sql.parent.span_id == handle.context.span_id
    attributes = dict(sql.attributes or {})
    assert attributes["db.query.text"] == "SELECT ?"
    assert attributes["db.system.name"] == "sqlite"
    assert "hunter2-canary" not in json.dumps(attributes)


async def test_http_client_spans_send_their_context_and_keep_no_credentials(recorder):
    provider = tracing.create_tracer_provider("request-api", None)
    spans = in_memory(provider)
    async with httpx.AsyncClient(base_url=recorder.url) as client:
        tracing.instrument_http_client(client, provider)
        with tracing.tracer_of(provider).start_as_current_span("route"):
            response = await client.get(
                "/plan", headers={"Authorization": "Bearer prov_canary_secret"}
            )
    assert response.status_code == 200

    call, route = spans.get_finished_spans()
    assert call.kind is SpanKind.CLIENT and call.parent is not None
    assert call.parent.span_id == route.context.span_id
    attributes = dict(call.attributes or {})
    assert attributes["http.request.method"] == "GET"
    assert attributes["http.response.status_code"] == 200
    assert "prov_canary_secret" not in json.dumps(attributes)
    traceparent = recorder.received[0].headers["traceparent"]
    assert traceparent.split("-")[1:3] == [
        format(call.context.trace_id, "032x"),
        format(call.context.span_id, "016x"),
    ]


async def test_server_spans_follow_http_conventions_and_skip_probes():
    provider = tracing.create_tracer_provider("allocator", None)
    spans = in_memory(provider)
    app = FastAPI()

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v1/things/{thing_id}")
    async def thing(thing_id: str) -> dict[str, str]:
        return {"id": thing_id}

    tracing.instrument_app(app, provider)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        assert (await client.get("/healthz")).status_code == 200
        caller_trace = f"{uuid.uuid4().hex}"
        headers = {"traceparent": f"00-{caller_trace}-{'ab' * 8}-01"}
        assert (await client.get("/v1/things/7", headers=headers)).status_code == 200

    (server,) = spans.get_finished_spans()
    assert server.name == "GET /v1/things/{thing_id}" and server.kind is SpanKind.SERVER
    attributes = dict(server.attributes or {})
    assert attributes["http.route"] == "/v1/things/{thing_id}"
    assert attributes["http.request.method"] == "GET"
    assert attributes["http.response.status_code"] == 200
    # A caller that sends its trace context gets the server span in its trace.
    assert format(server.context.trace_id, "032x") == caller_trace


class Pinged(Event):
    type = "test.pinged"
    topic = "test.pings"
    tenant: str
    catalog_item: str


def test_publish_attributes_follow_messaging_conventions_and_name_the_request():
    event = Pinged(request_id=uuid.uuid4(), tenant="acme", catalog_item="postgres_schema")
    envelope = Envelope.wrap(event, source="test")
    key = envelope.subject.encode()
    attributes = tracing.publish_attributes("test.pings", key, envelope.to_bytes())
    assert attributes == {
        "messaging.system": "kafka",
        "messaging.destination.name": "test.pings",
        "messaging.operation.type": "send",
        "messaging.operation.name": "publish",
        "messaging.kafka.message.key": envelope.subject,
        "messaging.message.id": str(envelope.id),
        "cloudevents.event_type": "test.pinged",
        "request.id": envelope.subject,
        "tenant.id": "acme",
        "catalog.item": "postgres_schema",
    }
    # A dead letter may be anything: it is still published, with what can be said of it.
    assert tracing.publish_attributes("deadletter.x", None, b"\xff not json") == {
        "messaging.system": "kafka",
        "messaging.destination.name": "deadletter.x",
        "messaging.operation.type": "send",
        "messaging.operation.name": "publish",
    }


def test_context_travels_through_headers_to_the_consumer_side():
    provider = tracing.create_tracer_provider("validator", None)
    spans = in_memory(provider)
    tracer = tracing.tracer_of(provider)
    with tracer.start_as_current_span("publish") as publish:
        headers = tracing.kafka_headers(tracing.inject([("own", "kept")], publish))
    decoded = tracing.decode_kafka_headers([*headers, ("binary", b"\xff")])
    assert ("own", "kept") in decoded
    with tracer.start_as_current_span("process", context=tracing.extract(decoded)):
        pass
    process: ReadableSpan = spans.get_finished_spans()[-1]
    assert (
        process.parent is not None and process.parent.span_id == publish.get_span_context().span_id
    )


async def test_a_batch_transaction_joins_its_request_or_links_the_mixed_ones():
    provider = tracing.create_tracer_provider("validator", None)
    spans = in_memory(provider)
    tracer = tracing.tracer_of(provider)
    with tracer.start_as_current_span("publish a") as a, tracer.start_as_current_span("b") as b:
        pass
    with tracer.start_as_current_span("publish c") as c:
        pass
    same_request = [tracing.inject(span=a), tracing.inject(span=b)]
    async with tracing.batch_span(tracer, "t", 3, same_request, group="validator"):
        pass
    mixed = [tracing.inject(span=a), tracing.inject(span=c), []]
    async with tracing.batch_span(tracer, "t", 3, mixed, group="validator"):
        pass

    joined, alone = spans.get_finished_spans()[-2:]
    assert joined.parent is not None and joined.parent.span_id == a.get_span_context().span_id
    assert alone.parent is None
    linked = [link.context.span_id for link in alone.links]
    assert linked == [a.get_span_context().span_id, c.get_span_context().span_id]
    assert alone.context.trace_id not in {
        a.get_span_context().trace_id,
        c.get_span_context().trace_id,
    }
    assert dict(alone.attributes or {})["messaging.batch.message_count"] == 3
