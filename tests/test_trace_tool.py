"""`python -m devstack trace`: a request's spans, as the services write them, read as a tree."""

from __future__ import annotations

import time
from pathlib import Path

from opentelemetry.trace import SpanKind

from devstack import traces
from events import tracing

REQUEST = "5f0c2b8e-0000-4000-8000-000000000001"


def write_a_request(traces_dir: Path, request_id: str) -> None:
    """What two services write for one request: the API's POST and publish, the validator's
    batch and message spans with their SQL, through the same JSON lines exporter."""
    api = tracing.create_tracer_provider("request-api", traces_dir)
    validator = tracing.create_tracer_provider("validator", traces_dir)
    api_tracer, validator_tracer = tracing.tracer_of(api), tracing.tracer_of(validator)
    facts = {"request.id": request_id}
    with api_tracer.start_as_current_span("POST /v1/requests", kind=SpanKind.SERVER) as post:
        post.set_attributes({**facts, "http.response.status_code": 202})
        with api_tracer.start_as_current_span("INSERT requests", kind=SpanKind.CLIENT) as sql:
            sql.set_attribute("db.system.name", "postgresql")
        with api_tracer.start_as_current_span("publish requests", kind=SpanKind.PRODUCER):
            headers = tracing.inject()
    time.sleep(0.01)
    with validator_tracer.start_as_current_span(
        "process requests",
        context=tracing.extract(headers),
        kind=SpanKind.CONSUMER,
        attributes={**facts, "cloudevents.event_type": "request.submitted"},
    ):
        for statement in ("SELECT policy", "SELECT limits"):
            with validator_tracer.start_as_current_span(statement, kind=SpanKind.CLIENT) as sql:
                sql.set_attribute("db.system.name", "postgresql")
        with validator_tracer.start_as_current_span("rules", attributes={"x": 1}):
            pass
    api.shutdown()
    validator.shutdown()


def test_a_request_is_shown_as_a_tree_with_durations(tmp_path):
    write_a_request(tmp_path, REQUEST)
    write_a_request(tmp_path, "another-request")
    with (tmp_path / "validator.jsonl").open("a") as file:
        file.write('{"name": "cut short by a cra')  # a crash mid-line is skipped

    report = traces.report(tmp_path, REQUEST)
    header, columns, *rows = report.splitlines()
    assert header.startswith("trace 0x")
    assert header.endswith("7 spans, " + header.split(", ")[1] + ", request-api, validator")
    assert columns.split() == ["start", "ms", "took", "ms", "service", "span"]
    tree = [row[36:] for row in rows[: rows.index("")]]
    assert tree[:3] == ["POST /v1/requests  [202]", "  (1 SQL statement)", "  publish requests"]
    assert tree[3].startswith("    process requests  [request.submitted; ")
    assert tree[3].endswith(" ms after publish]")
    assert tree[4:] == ["      (2 SQL statements)", "      rules"]
    assert [row[21:34].strip() for row in rows[:4]] == ["request-api"] * 3 + ["validator"]
    assert float(rows[0].split()[0]) == 0.0
    busy = rows[rows.index("") + 1 :]
    assert busy[0].startswith("busy time of each service")
    assert {line.split()[0] for line in busy[1:]} == {"request-api", "validator"}


def test_every_sql_statement_on_demand(tmp_path):
    write_a_request(tmp_path, REQUEST)
    report = traces.report(tmp_path, REQUEST, sql=True)
    assert "SELECT policy" in report and "SELECT limits" in report
    assert "SQL statements)" not in report


def test_a_request_without_spans_says_so(tmp_path):
    assert traces.report(tmp_path, REQUEST).startswith(f"no span names request {REQUEST}")


def test_a_span_whose_parent_is_missing_is_shown_as_a_root(tmp_path):
    write_a_request(tmp_path, REQUEST)
    lines = (tmp_path / "request-api.jsonl").read_text().splitlines()
    kept = [line for line in lines if "POST /v1/requests" not in line]
    (tmp_path / "request-api.jsonl").write_text("\n".join(kept) + "\n")
    (found,) = traces.traces_of(traces.read_spans(tmp_path), REQUEST)
    assert {s.name for s in traces.roots_of(found)} == {"INSERT requests", "publish requests"}
    assert "not found)" in traces.report(tmp_path, REQUEST)
