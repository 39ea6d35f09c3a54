"""Every service's `/metrics`: each family is there, and moves when it should. The tests
stall a consumer (its inbox locked) to see lag rise and fall, stall a relay (its advisory
lock held) to see the outbox back up, fail a step to see a dead letter and a compensation,
and leave a request waiting for approval past the test stack's stuck threshold (3 s)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from tests.e2e.client import SERVICES, Platform, key_for
from tests.polling import eventually

from events.outbox import RELAY_LOCK

pytestmark = pytest.mark.integration

RUNTIME_FAMILIES = {
    "events_processed": "counter",
    "event_handler_duration_seconds": "histogram",
    "events_dead_lettered": "counter",
    "outbox_published": "counter",
    "outbox_dead_lettered": "counter",
    "outbox_backlog": "gauge",
    "outbox_oldest_unpublished_age_seconds": "gauge",
    "kafka_consumergroup_lag": "gauge",
    "kafka_consumergroup_lag_seconds": "gauge",
    "kafka_consumergroup_current_offset": "gauge",
    "http_requests": "counter",
    "http_request_duration_seconds": "histogram",
    "process_cpu_seconds": "counter",
    "process_virtual_memory_bytes": "gauge",
    "process_resident_memory_bytes": "gauge",
    "process_start_time_seconds": "gauge",
    "process_open_fds": "gauge",
    "process_max_fds": "gauge",
}
REQUEST_FAMILIES = {
    "provisioning_stage_duration_seconds": "histogram",
    "provisioning_end_to_end_seconds": "histogram",
    "provisioning_compensations_started": "counter",
    "provisioning_compensations_finished": "counter",
    "provisioning_requests_stuck": "gauge",
}


class Scrape:
    """One `/metrics` page, parsed."""

    def __init__(self, text: str) -> None:
        self.families = {f.name: f for f in text_string_to_metric_families(text)}
        self.samples = [s for f in self.families.values() for s in f.samples]

    def values(self, name: str, **labels: str) -> list[float]:
        return [
            s.value
            for s in self.samples
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
        ]

    def total(self, name: str, **labels: str) -> float:
        return sum(self.values(name, **labels))

    def most(self, name: str, **labels: str) -> float:
        return max(self.values(name, **labels), default=0.0)


async def scrape(platform: Platform, service: str) -> Scrape:
    async with httpx.AsyncClient() as client:
        page = await client.get(f"{platform.stack.service_url(service)}/metrics")
    assert page.status_code == 200, page.text
    return Scrape(page.text)


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


async def test_every_service_exposes_every_family(platform: Platform):
    for service in SERVICES:
        families = (await scrape(platform, service)).families
        expected = RUNTIME_FAMILIES | (REQUEST_FAMILIES if service == "request-api" else {})
        for name, kind in expected.items():
            assert name in families, (service, name)
            assert families[name].type == kind, (service, name)
        # Nothing else either: tests/test_observability.py checks that the dashboards and
        # alerts watch exactly these, built offline the way the services build them. (The
        # parser reads a counter's or histogram's `_created` samples as a family of their own.)
        assert {name.removesuffix("_created") for name in families} == set(expected), service


async def test_http_requests_are_counted_by_route_template(platform: Platform):
    route = "/v1/requests/{request_id}"
    before = await scrape(platform, "request-api")
    missing = [str(uuid.uuid4()) for _ in range(3)]
    for request_id in missing:
        assert (await platform.api.get(f"/v1/requests/{request_id}")).status_code == 404
    after = await scrape(platform, "request-api")

    labels = {"method": "GET", "route": route, "status": "404"}
    assert (
        after.total("http_requests_total", **labels) - before.total("http_requests_total", **labels)
        == 3
    )
    duration = {"method": "GET", "route": route}
    assert after.total("http_request_duration_seconds_count", **duration) >= 3
    routes = {s.labels.get("route", "") for s in after.samples if s.name == "http_requests_total"}
    assert not any(request_id in r for r in routes for request_id in missing)


async def test_a_completed_request_is_timed_through_each_stage_and_end_to_end(
    platform: Platform,
):
    item = {"catalog_item": "postgres_schema", "operation": "provision"}
    before = await scrape(platform, "request-api")
    validator_before = await scrape(platform, "validator")
    await platform.completed("postgres_schema", name=unique("timed"))

    async def observed() -> Scrape | None:
        after = await scrape(platform, "request-api")
        ended = after.total(
            "provisioning_end_to_end_seconds_count", outcome="completed", **item
        ) > before.total("provisioning_end_to_end_seconds_count", outcome="completed", **item)
        return after if ended else None

    after = await eventually(observed, "the end to end latency")
    for stage in ("submitted", "validated", "allocated", "configured", "deployed", "verified"):
        name = "provisioning_stage_duration_seconds_count"
        assert after.total(name, stage=stage, **item) > before.total(name, stage=stage, **item)
    validator = await scrape(platform, "validator")
    handled = {"event_type": "request.submitted", "outcome": "handled"}
    assert validator.total("events_processed_total", **handled) > validator_before.total(
        "events_processed_total", **handled
    )
    timed = {"event_type": "request.submitted", "outcome": "ok"}
    assert validator.total("event_handler_duration_seconds_count", **timed) > 0


async def test_a_failing_step_is_a_dead_letter_and_a_compensation(platform: Platform):
    item = {"catalog_item": "postgres_schema"}
    before = await scrape(platform, "request-api")
    deployer_before = await scrape(platform, "deployer")
    request = await platform.wait_terminal(
        (await platform.submit("postgres_schema", name=unique("fault_at_deploy")))["id"]
    )
    assert request["status"] == "rolled_back", request

    deployer = await scrape(platform, "deployer")
    topic = {"topic": "provisioning.configuration"}
    assert (
        deployer.total("events_dead_lettered_total", **topic)
        == deployer_before.total("events_dead_lettered_total", **topic) + 1
    )
    failed = {"event_type": "resource.configured", "outcome": "error"}
    assert deployer.total("event_handler_duration_seconds_count", **failed) > 0

    async def compensated() -> Scrape | None:
        after = await scrape(platform, "request-api")
        finished = {"outcome": "rolled_back", **item}
        done = after.total("provisioning_compensations_finished_total", **finished) > before.total(
            "provisioning_compensations_finished_total", **finished
        )
        return after if done else None

    after = await eventually(compensated, "the compensation counted")
    assert after.total("provisioning_compensations_started_total", **item) > before.total(
        "provisioning_compensations_started_total", **item
    )
    ended = {"outcome": "rolled_back", "operation": "provision", **item}
    name = "provisioning_end_to_end_seconds_count"
    assert after.total(name, **ended) > before.total(name, **ended)


@contextlib.asynccontextmanager
async def holding(platform: Platform, database: str, statement: str) -> AsyncIterator[None]:
    """Run `statement` in a transaction of the database's owner, kept open inside."""
    connection = await asyncpg.connect(platform.stack.database_dsn(database))
    try:
        async with connection.transaction():
            await connection.execute(statement)
            yield
    finally:
        await connection.close()


async def test_lag_rises_while_a_consumer_stalls_and_falls_once_it_catches_up(
    platform: Platform,
):
    group = {"consumergroup": "validator", "topic": "provisioning.requests"}

    async def lag() -> tuple[float, float]:
        validator = await scrape(platform, "validator")
        return (
            validator.total("kafka_consumergroup_lag", **group),
            validator.most("kafka_consumergroup_lag_seconds", **group),
        )

    await eventually(lambda: _is(lag, (0.0, 0.0)), "the validator caught up before the test")
    # The validator's consume loop waits for its inbox: it takes messages, commits none.
    async with holding(platform, "validator", "LOCK TABLE event_inbox IN ACCESS EXCLUSIVE MODE"):
        submitted = [
            (await platform.submit("postgres_schema", name=unique("lagging")))["id"]
            for _ in range(3)
        ]
        _, first_age = await eventually(
            lambda: _at_least(lag, (3.0, 1.0)), "lag and its age to rise"
        )
        await asyncio.sleep(2.0)
        _, later_age = await lag()
        assert later_age > first_age
    await eventually(lambda: _is(lag, (0.0, 0.0)), "the lag to fall back to 0")
    for request_id in submitted:
        assert (await platform.wait_terminal(request_id))["status"] == "completed"


async def test_the_outbox_backs_up_while_its_relay_cannot_publish(platform: Platform):
    async def outbox() -> tuple[float, float]:
        request_api = await scrape(platform, "request-api")
        return (
            request_api.total("outbox_backlog"),
            request_api.total("outbox_oldest_unpublished_age_seconds"),
        )

    # The relay publishes under this lock; held here, it skips every round.
    async with holding(platform, "request_api", f"SELECT pg_advisory_xact_lock({RELAY_LOCK})"):
        request = await platform.submit("postgres_schema", name=unique("held"))
        await eventually(lambda: _at_least(outbox, (1.0, 2.0)), "a backlog that ages")
    await eventually(lambda: _is(outbox, (0.0, 0.0)), "the backlog published")
    assert (await platform.wait_terminal(request["id"]))["status"] == "completed"


async def test_a_request_waiting_too_long_counts_as_stuck(platform: Platform):
    """A VM above the approval threshold waits in `awaiting_approval`, longer than the test
    stack's 3 s; cancelled, it is stuck no more."""
    key = await key_for(platform.stack, name=unique("rita"), tenant="default", roles=["requester"])
    body = {
        "catalog_item": "cloud_vm",
        "parameters": {
            "name": unique("bigvm"),
            "vcpu": 12,
            "ram_gb": 16,
            "image": "debian-12",
            "subnet": "lab",
        },
    }
    async with httpx.AsyncClient(
        base_url=platform.stack.service_url("request-api"),
        headers={"Authorization": f"Bearer {key}"},
    ) as rita:
        answer = await rita.post("/v1/requests", json=body)
        assert answer.status_code == 202, answer.text
        request_id = answer.json()["id"]

        async def stuck() -> float:
            request_api = await scrape(platform, "request-api")
            return request_api.total("provisioning_requests_stuck", status="awaiting_approval")

        during = await eventually(stuck, "the request counted as stuck")
        status = (await platform.api.get(f"/v1/requests/{request_id}")).json()["status"]
        assert status == "awaiting_approval"
        assert (await rita.post(f"/v1/requests/{request_id}/cancel")).status_code == 202
    assert (await platform.wait_terminal(request_id))["status"] == "cancelled"
    await eventually(lambda: _below(stuck, during), "the request stuck no more")


async def _is(
    read: Callable[[], Awaitable[tuple[float, ...]]], expected: tuple[float, ...]
) -> bool:
    return await read() == expected


async def _at_least(
    read: Callable[[], Awaitable[tuple[float, ...]]], least: tuple[float, ...]
) -> tuple[float, ...] | None:
    values = await read()
    return values if all(v >= m for v, m in zip(values, least, strict=True)) else None


async def _below(read: Callable[[], Awaitable[float]], value: float) -> bool:
    return await read() < value
