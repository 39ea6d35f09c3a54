"""One request, one trace, across every service: from the POST through every consumer, the
outbox relay, every driver call and every compensation, read back from the JSON lines the
services write under the stack's traces directory."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable

import pytest
from tests.e2e.client import Platform

from devstack import traces
from devstack.traces import Span

pytestmark = pytest.mark.integration

SERVICES = {"request-api", "validator", "allocator", "configurator", "deployer", "auditor"}
# Spans are exported in batches every few seconds, each service on its own.
EXPORT_WAIT_S = 30.0


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


async def trace_of(
    platform: Platform, request_id: str, complete: Callable[[list[Span]], bool]
) -> list[Span]:
    """The request's only trace, once `complete` says every expected span is in and every
    span's parent has been exported too."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + EXPORT_WAIT_S
    while True:
        found = traces.traces_of(traces.read_spans(platform.stack.config.traces_dir), request_id)
        if len(found) == 1 and len(traces.roots_of(found[0])) == 1 and complete(found[0]):
            return found[0]
        if loop.time() > deadline:
            summary = [sorted({(s.service, s.name) for s in spans}) for spans in found]
            raise AssertionError(f"{len(found)} traces for {request_id}: {summary}")
        await asyncio.sleep(0.5)


def processing(spans: list[Span], service: str, event_type: str) -> list[Span]:
    return [
        s
        for s in spans
        if s.service == service
        and s.kind == "CONSUMER"
        and s.attributes.get("cloudevents.event_type") == event_type
    ]


def has(service: str, event_type: str) -> Callable[[list[Span]], bool]:
    return lambda spans: bool(processing(spans, service, event_type))


def all_of(*checks: Callable[[list[Span]], bool]) -> Callable[[list[Span]], bool]:
    return lambda spans: all(check(spans) for check in checks)


def ancestors(span: Span, spans: list[Span]) -> list[Span]:
    """Parent, grandparent, ... up to the root."""
    by_id = {s.span_id: s for s in spans}
    chain = []
    while span.parent_id is not None:
        span = by_id[span.parent_id]
        chain.append(span)
    return chain


def one(spans: list[Span]) -> Span:
    assert len(spans) == 1, [(s.service, s.name, s.attributes) for s in spans]
    return spans[0]


def assert_follows(later: Span, earlier: Span, spans: list[Span]) -> None:
    """`later` descends from `earlier` through a publish span of `earlier`'s service."""
    chain = ancestors(later, spans)
    assert earlier in chain, f"{later.service} {later.name} does not follow {earlier.name}"
    publish = chain[chain.index(earlier) - 1]
    assert publish.kind == "PRODUCER" and publish.service == earlier.service


async def test_one_request_is_one_trace_across_six_services_in_step_order(platform: Platform):
    name = unique("traced")
    submitted = await platform.submit("postgres_schema", name=name)
    request = await platform.wait_terminal(submitted["id"])
    assert request["status"] == "completed", request
    request_id = request["id"]
    everyone_heard_the_end = all_of(
        *(has(service, "provisioning.completed") for service in ("request-api", "auditor")),
        has("allocator", "provisioning.completed"),
        lambda spans: {s.service for s in spans} == SERVICES,
    )
    spans = await trace_of(platform, request_id, everyone_heard_the_end)

    (root,) = traces.roots_of(spans)
    assert (root.service, root.kind, root.name) == ("request-api", "SERVER", "POST /v1/requests")
    assert root.parent_id is None
    assert root.attributes["http.response.status_code"] == 202
    assert root.attributes["request.id"] == request_id
    assert root.attributes["tenant.id"] == "default"
    assert root.attributes["catalog.item"] == "postgres_schema"

    # Every step follows the one before it, through the relay's publish span.
    validate = one(processing(spans, "validator", "request.submitted"))
    publish = ancestors(validate, spans)[0]
    assert (publish.service, publish.kind) == ("request-api", "PRODUCER")
    assert publish.name == "publish provisioning.requests"
    assert root in ancestors(publish, spans)
    allocate = one(processing(spans, "allocator", "request.validated"))
    assert_follows(allocate, validate, spans)
    configure = one(processing(spans, "configurator", "resource.allocated"))
    assert_follows(configure, allocate, spans)
    deploy = one(processing(spans, "deployer", "resource.configured"))
    assert_follows(deploy, configure, spans)
    driver_calls = [c.name for c in deploy.children if c.kind == "INTERNAL"]
    assert driver_calls == ["postgres apply", "postgres verify"]
    for step in (validate, allocate, configure, deploy):
        assert step.attributes["request.id"] == request_id
    completed = one(processing(spans, "request-api", "provisioning.completed"))
    assert_follows(completed, deploy, spans)
    # The auditor hears every step, each right after its publish.
    audited = [
        s
        for s in spans
        if s.service == "auditor"
        and s.kind == "CONSUMER"
        and "messaging.message.id" in s.attributes
    ]
    assert {s.attributes["cloudevents.event_type"] for s in audited} >= {
        "request.submitted",
        "request.validated",
        "resource.allocated",
        "resource.configured",
        "provisioning.completed",
    }
    for span in audited:
        assert ancestors(span, spans)[0].kind == "PRODUCER"
        assert span.attributes["messaging.consumer.group.name"] == "auditor"
        assert span.attributes["messaging.destination.name"].startswith("provisioning.")
        assert span.attributes["messaging.kafka.message.key"] == request_id
        assert span.attributes["messaging.operation.type"] == "process"

    # Messaging conventions on the relay's side, and the request's facts where known.
    assert publish.attributes["messaging.system"] == "kafka"
    assert publish.attributes["messaging.operation.type"] == "send"
    for same in ("messaging.message.id", "messaging.kafka.offset", "messaging.kafka.message.key"):
        assert publish.attributes[same] == validate.attributes[same]
    assert validate.attributes["tenant.id"] == "default"
    assert validate.attributes["catalog.item"] == "postgres_schema"

    # SQL statements of every service (the handlers' and their batch transactions': inbox,
    # outbox), each inside traced work, never with its values.
    queries = [s for s in spans if s.is_sql]
    assert {s.service for s in queries} == SERVICES
    assert any(s.name.startswith("INSERT") and s.service == "validator" for s in queries)
    assert all(s.parent_id is not None and s.kind == "CLIENT" for s in queries)
    assert any("$1" in s.attributes["db.query.text"] for s in queries)
    assert not [s for s in queries if name in json.dumps(s.attributes)]


async def test_a_rolled_back_request_stays_in_one_trace_with_its_compensations(
    platform: Platform,
):
    submitted = await platform.submit("postgres_schema", name=unique("fault_at_deploy"))
    request = await platform.wait_terminal(submitted["id"])
    assert request["status"] == "rolled_back", request
    undone = all_of(
        has("deployer", "provisioning.failed"),
        has("configurator", "deployment.rolled_back"),
        has("allocator", "configuration.rolled_back"),
        has("request-api", "allocation.released"),
        has("auditor", "allocation.released"),
    )
    spans = await trace_of(platform, request["id"], undone)

    (root,) = traces.roots_of(spans)
    assert root.name == "POST /v1/requests"
    # The fault fails the fast pass over the batch and every retry of the message alone.
    deploys = processing(spans, "deployer", "resource.configured")
    assert deploys and all(d.error for d in deploys)
    undo_deploy = one(processing(spans, "deployer", "provisioning.failed"))
    (gave_up,) = [d for d in deploys if d in ancestors(undo_deploy, spans)]
    assert_follows(undo_deploy, gave_up, spans)
    assert [c.name for c in undo_deploy.children if c.kind == "INTERNAL"] == ["postgres remove"]
    undo_configure = one(processing(spans, "configurator", "deployment.rolled_back"))
    assert_follows(undo_configure, undo_deploy, spans)
    release = one(processing(spans, "allocator", "configuration.rolled_back"))
    assert_follows(release, undo_configure, spans)
    for step in (undo_deploy, undo_configure, release):
        assert step.attributes["request.id"] == request["id"]


async def test_a_webhook_driver_call_shows_its_http_calls(platform: Platform):
    request = await platform.completed(
        "software_license", name=unique("seat"), product="figma", assignee="carol"
    )
    spans = await trace_of(platform, request["id"], has("request-api", "provisioning.completed"))
    deploy = one(processing(spans, "deployer", "resource.configured"))
    apply = one([c for c in deploy.children if c.name == "licence apply"])
    calls = [c for c in apply.children if c.kind == "CLIENT"]
    assert calls and {c.attributes["http.request.method"] for c in calls} <= {"GET", "POST"}
    # A read of what is not there yet answers 404, with the record's revision.
    assert all(c.attributes["http.response.status_code"] in (200, 202, 404) for c in calls)
    assert (await platform.deprovision(request["resource_id"]))["status"] == "completed"


async def test_a_call_between_services_joins_the_callers_trace(platform: Platform):
    """A dry run asks the allocator over HTTP; a caller's `traceparent` is honoured."""
    trace_id = uuid.uuid4().hex
    body = {"catalog_item": "postgres_schema", "parameters": {"name": unique("planned")}}
    answer = await platform.api.post(
        "/v1/requests",
        params={"dry_run": "true"},
        json=body,
        headers={"traceparent": f"00-{trace_id}-{'c0' * 8}-01"},
    )
    assert answer.status_code == 200, answer.text

    loop = asyncio.get_running_loop()
    deadline = loop.time() + EXPORT_WAIT_S
    while True:
        spans = [
            s
            for s in traces.read_spans(platform.stack.config.traces_dir)
            if s.trace_id == f"0x{trace_id}"
        ]
        servers = {s.service: s for s in spans if s.kind == "SERVER"}
        if set(servers) == {"request-api", "allocator"} or loop.time() > deadline:
            break
        await asyncio.sleep(0.5)
    assert set(servers) == {"request-api", "allocator"}, spans
    (call,) = [
        s for s in spans if s.kind == "CLIENT" and s.service == "request-api" and not s.is_sql
    ]
    assert call.parent_id == servers["request-api"].span_id
    assert servers["allocator"].parent_id == call.span_id
    assert servers["request-api"].parent_id == f"0x{'c0' * 8}"
    assert "authorization" not in str([s.attributes for s in spans]).lower()


async def test_the_trace_tool_shows_where_the_time_went(platform: Platform):
    request = await platform.completed("postgres_schema", name=unique("timed"))
    await trace_of(platform, request["id"], has("auditor", "provisioning.completed"))
    command = [sys.executable, "-m", "devstack", "--profile", "test", "trace", request["id"]]
    shown = await asyncio.to_thread(
        subprocess.run, command, capture_output=True, text=True, check=True, env=os.environ
    )
    lines = shown.stdout.splitlines()

    assert lines[0].startswith("trace 0x") and ", ".join(sorted(SERVICES)) in lines[0]
    rows = lines[2 : lines.index("")]
    # start, took, service, then the span indented by its depth.
    start, took, service, *name = rows[0].split()
    assert (service, " ".join(name)) == ("request-api", "POST /v1/requests [202]")
    assert float(start) == 0.0 and float(took) > 0
    deploy = next(row for row in rows if "[resource.configured;" in row and "deployer" in row)
    sql, apply = rows[rows.index(deploy) + 1 : rows.index(deploy) + 3]
    assert sql.endswith("SQL statements)") and "postgres apply" in apply
    # Deeper in the tree, further to the right.
    assert apply.index("postgres apply") > deploy.index("process provisioning.configuration")
    assert "ms after publish" in deploy
    assert lines[lines.index("") + 1].startswith("busy time of each service")
