import time
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from aiokafka import TopicPartition
from fastapi import FastAPI
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from events.http import HttpMetrics, install_problem_handlers
from events.lag import LagMonitor
from events.metrics import RuntimeMetrics, after_commit


def families(metrics: RuntimeMetrics) -> dict[str, Any]:
    page = generate_latest(metrics.registry).decode()
    return {family.name: family for family in text_string_to_metric_families(page)}


def value(metrics: RuntimeMetrics, sample_name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(sample_name, labels)


def test_every_runtime_family_is_exposed():
    assert set(families(RuntimeMetrics.create())) >= {
        "events_processed",
        "event_handler_duration_seconds",
        "events_dead_lettered",
        "outbox_published",
        "outbox_backlog",
        "outbox_oldest_unpublished_age_seconds",
        "kafka_consumergroup_lag",
        "kafka_consumergroup_lag_seconds",
        "kafka_consumergroup_current_offset",
        "http_requests",
        "http_request_duration_seconds",
    }


class Recorder:
    def __init__(self) -> None:
        self.done: list[str] = []

    def __call__(self, name: str) -> Any:
        return lambda: self.done.append(name)


@pytest.fixture
def session():
    """after_commit needs only `sync_session`: a real Session on SQLite stands in for the
    AsyncSession (savepoints and all)."""
    sync = Session(create_engine("sqlite://"))
    yield SimpleNamespace(sync_session=sync)
    sync.close()


def test_after_commit_runs_once_the_transaction_commits(session):
    sync, recorded = session.sync_session, Recorder()
    with sync.begin():
        sync.execute(text("SELECT 1"))
        after_commit(session, recorded("moved"))
        with sync.begin_nested():
            after_commit(session, recorded("in a savepoint"))
        assert recorded.done == []  # a released savepoint may still be rolled back
    assert recorded.done == ["moved", "in a savepoint"]


def test_after_commit_forgets_what_a_rollback_undid(session):
    sync, recorded = session.sync_session, Recorder()
    with sync.begin():
        sync.execute(text("SELECT 1"))
        after_commit(session, recorded("kept"))
        with pytest.raises(ValueError), sync.begin_nested():
            after_commit(session, recorded("failed handler"))
            raise ValueError
    assert recorded.done == ["kept"]
    with pytest.raises(ValueError), sync.begin():
        after_commit(session, recorded("failed batch"))
        raise ValueError
    with sync.begin():
        sync.execute(text("SELECT 1"))
    assert recorded.done == ["kept"]


async def test_http_requests_are_counted_by_route_template_method_and_status():
    metrics = RuntimeMetrics.create()
    app = FastAPI()
    install_problem_handlers(app)
    app.add_middleware(HttpMetrics, metrics=metrics)

    @app.get("/things/{thing_id}")
    async def thing(thing_id: int) -> dict[str, int]:
        if thing_id == 0:
            raise RuntimeError("boom")
        return {"id": thing_id}

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        assert (await client.get("/things/1")).status_code == 200
        assert (await client.get("/things/2")).status_code == 200
        assert (await client.get("/things/x")).status_code == 422
        assert (await client.get("/things/0")).status_code == 500
        assert (await client.post("/things/1")).status_code == 405
        assert (await client.get("/nowhere/42")).status_code == 404
        assert (await client.request("BREW", "/things/1")).status_code == 405

    def count(method: str, route: str, status: str) -> float | None:
        return value(metrics, "http_requests_total", method=method, route=route, status=status)

    assert count("GET", "/things/{thing_id}", "200") == 2
    assert count("GET", "/things/{thing_id}", "422") == 1
    assert count("GET", "/things/{thing_id}", "500") == 1
    assert count("POST", "/things/{thing_id}", "405") == 1
    assert count("GET", "unmatched", "404") == 1
    assert count("other", "/things/{thing_id}", "405") == 1
    labels = {"method": "GET", "route": "/things/{thing_id}"}
    assert value(metrics, "http_request_duration_seconds_count", **labels) == 4
    routes = {s.labels["route"] for s in families(metrics)["http_requests"].samples}
    assert routes == {"/things/{thing_id}", "unmatched"}  # never a raw path


class FakeConsumer:
    """What LagMonitor asks of aiokafka's consumer, answered from dicts."""

    def __init__(self, committed: dict[TopicPartition, int | None], end: dict[TopicPartition, int]):
        self.committed_offsets, self.end = committed, end

    def assignment(self) -> set[TopicPartition]:
        return set(self.committed_offsets)

    async def committed(self, tp: TopicPartition) -> int | None:
        return self.committed_offsets[tp]

    async def end_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: self.end[tp] for tp in partitions}

    async def beginning_offsets(
        self, partitions: list[TopicPartition]
    ) -> dict[TopicPartition, int]:
        return dict.fromkeys(partitions, 0)


class FakeProbe(LagMonitor):
    """The message at each offset was written `age_s` ago."""

    age_s = 42.0
    asked: dict[TopicPartition, int]

    async def _timestamps(self, offsets: dict[TopicPartition, int]) -> dict[TopicPartition, int]:
        self.asked = offsets
        return dict.fromkeys(offsets, int((time.time() - self.age_s) * 1000))


async def test_lag_is_end_minus_committed_and_its_age_that_of_the_oldest_message():
    metrics = RuntimeMetrics.create()
    monitor = FakeProbe(group="validator", bootstrap_servers="unused", metrics=metrics)
    behind, caught_up, fresh = (TopicPartition("provisioning.requests", p) for p in (0, 1, 2))
    kafka = FakeConsumer(
        {behind: 10, caught_up: 7, fresh: None}, {behind: 15, caught_up: 7, fresh: 3}
    )
    await monitor.refresh(kafka)

    def sample(name: str, tp: TopicPartition) -> float | None:
        labels = {"consumergroup": "validator", "topic": tp.topic, "partition": str(tp.partition)}
        return value(metrics, name, **labels)

    assert sample("kafka_consumergroup_lag", behind) == 5
    assert sample("kafka_consumergroup_lag", caught_up) == 0
    assert sample("kafka_consumergroup_lag", fresh) == 3  # never committed: from the start
    assert sample("kafka_consumergroup_current_offset", behind) == 10
    assert monitor.asked == {behind: 10, fresh: 0}  # only lagging partitions are probed
    assert 41 < (sample("kafka_consumergroup_lag_seconds", behind) or 0) < 44
    assert sample("kafka_consumergroup_lag_seconds", caught_up) == 0

    # A rebalance took two partitions away: their series go, they are another's to report.
    kafka.committed_offsets = {behind: 15}
    kafka.end = {behind: 15}
    await monitor.refresh(kafka)
    assert sample("kafka_consumergroup_lag", behind) == 0
    assert sample("kafka_consumergroup_lag_seconds", behind) == 0
    assert sample("kafka_consumergroup_lag", caught_up) is None
    await monitor.refresh(None)  # the consumer is down: nothing held, nothing reported
    assert sample("kafka_consumergroup_lag", behind) is None
